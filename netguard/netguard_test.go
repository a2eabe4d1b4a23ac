package netguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseNetworks(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "db.internal" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		in      string
		nets    string
		eps     string
		wantErr bool
	}{
		{in: "", nets: "", eps: ""},
		{in: "169.254.0.0/16, fe80::/10", nets: "169.254.0.0/16 fe80::/10"},
		{in: "10.1.2.3", nets: "10.1.2.3/32"},
		{in: "10.1.2.3/8", nets: "10.0.0.0/8"},
		{in: "127.0.0.1:5432,db.internal:6379", eps: "127.0.0.1:5432 10.0.0.5:6379"},
		{in: "[::1]:9464", eps: "[::1]:9464"},
		{in: "nowhere:80", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "host:0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			nets, eps, err := ParseNetworks(context.Background(), tt.in, lookup)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := join(nets); got != tt.nets {
				t.Errorf("networks = %q, want %q", got, tt.nets)
			}
			if got := join(eps); got != tt.eps {
				t.Errorf("endpoints = %q, want %q", got, tt.eps)
			}
		})
	}
}

func join[T fmt.Stringer](xs []T) string {
	var s []string
	for _, x := range xs {
		s = append(s, x.String())
	}
	return strings.Join(s, " ")
}

func TestPolicyChecks(t *testing.T) {
	p := &Policy{
		BlockedNetworks:  append(DefaultBlockedNetworks(), netip.MustParsePrefix("127.0.0.2/32")),
		BlockedEndpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5432"), netip.MustParseAddrPort("10.9.9.9:6379")},
	}
	tests := []struct {
		addr string
		rule string // "" means allowed
	}{
		{"169.254.169.254:80", RuleNetwork},
		{"[fe80::1]:80", RuleNetwork},
		{"[::ffff:169.254.169.254]:80", RuleNetwork}, // IPv4-mapped
		{"127.0.0.2:8080", RuleNetwork},
		{"127.0.0.1:5432", RuleEndpoint},
		{"127.0.0.3:5432", RuleEndpoint}, // a loopback endpoint blocks the port on every local address
		{"[::1]:5432", RuleEndpoint},
		{"10.9.9.9:6379", RuleEndpoint},
		{"10.9.9.9:6380", ""},
		{"0.0.0.0:3002", RuleNetwork}, // reaches this host whatever the rules for loopback
		{"[::]:3002", RuleNetwork},
		{"127.0.0.1:3002", ""}, // loopback stays allowed by default
		{"192.168.1.10:80", ""},
		{"10.0.0.1:5432", ""}, // not this host
		{"93.184.216.34:443", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			b := p.CheckAddr(netip.MustParseAddrPort(tt.addr), "x")
			got := ""
			if b != nil {
				got = b.Rule
			}
			if got != tt.rule {
				t.Errorf("rule = %q, want %q (%v)", got, tt.rule, b)
			}
		})
	}

	allow := &Policy{AllowedHosts: []string{"example.com", "*.test.example", "127.0.0.1"}}
	hosts := []struct {
		host string
		ok   bool
	}{
		{"example.com", true}, {"EXAMPLE.com.", true}, {"www.example.com", false},
		{"a.test.example", true}, {"test.example", false}, {"eviltest.example", false},
		{"127.0.0.1", true}, {"[::1]", false},
	}
	for _, h := range hosts {
		if b := allow.CheckHost(h.host, h.host); (b == nil) != h.ok {
			t.Errorf("CheckHost(%q) = %v, want allowed %v", h.host, b, h.ok)
		}
	}
}

// upstream serves text on addr (a loopback address:0) until the test ends.
func upstream(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func text(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s) })
}

// blockLog collects the proxy's refusals.
type blockLog struct {
	mu  sync.Mutex
	got []*Blocked
}

func (l *blockLog) add(b *Blocked) { l.mu.Lock(); l.got = append(l.got, b); l.mu.Unlock() }
func (l *blockLog) all() []*Blocked {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Blocked(nil), l.got...)
}

func TestProxy(t *testing.T) {
	public := upstream(t, "127.0.0.1:0", text("public page"))
	secret := upstream(t, "127.0.0.2:0", text("the secret"))
	_, secretPort, _ := net.SplitHostPort(secret.Listener.Addr().String())
	redirect := upstream(t, "127.0.0.1:0", http.RedirectHandler(secret.URL+"/x", http.StatusFound))
	p := &Policy{
		BlockedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		// rebind.test resolves to the blocked address, as a rebinding DNS
		// server would answer on the second lookup.
		LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
			if host == "rebind.test" {
				return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
			}
			return nil, errors.New("no such host")
		},
	}
	var log blockLog
	x, err := Listen(p, Hooks{Blocked: log.add})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	proxyURL, _ := url.Parse(x.URL())
	client := &http.Client{
		Transport:     &http.Transport{Proxy: http.ProxyURL(proxyURL)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	defer client.CloseIdleConnections()

	get := func(u string) (int, string, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get(BlockedHeader), string(b)
	}
	if code, _, body := get(public.URL + "/"); code != 200 || body != "public page" {
		t.Errorf("allowed request: %d %q", code, body)
	}
	code, rule, body := get(secret.URL + "/")
	if code != http.StatusForbidden || rule != RuleNetwork || strings.Contains(body, "the secret") || !strings.Contains(body, "blocked by policy") {
		t.Errorf("blocked request: %d rule %q body %q", code, rule, body)
	}
	// The redirect itself passes; following it is a new request, refused.
	if code, _, _ := get(redirect.URL + "/"); code != http.StatusFound {
		t.Errorf("redirect: %d, want 302 passed through", code)
	}
	if code, _, _ := get("http://rebind.test:" + secretPort + "/"); code != http.StatusForbidden {
		t.Errorf("name resolving to a blocked address: %d, want 403", code)
	}

	// CONNECT (HTTPS, WebSockets) to the blocked address is refused
	// before any byte reaches it; to an allowed one it tunnels.
	tunnel := func(hostport string) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", proxyURL.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			return resp.Status
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", hostport)
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := tunnel(public.Listener.Addr().String()); got != "public page" {
		t.Errorf("tunnel to an allowed address: %q", got)
	}
	if got := tunnel(secret.Listener.Addr().String()); !strings.HasPrefix(got, "403") {
		t.Errorf("tunnel to a blocked address: %q, want 403", got)
	}

	got := log.all()
	if len(got) != 3 {
		t.Fatalf("refusals reported = %d (%v), want 3", len(got), got)
	}
	if !strings.Contains(got[0].Error(), "blocked by policy: "+secret.URL+"/ (RUN_BLOCKED_NETWORKS 127.0.0.2/32)") {
		t.Errorf("message = %q", got[0].Error())
	}
}
