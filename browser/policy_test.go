package browser

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/recording"
)

// Each test below replays a recording whose last checkpoint passes only if
// the hole it tries works (the host file's text, or a secret served from a
// blocked address, shows on the page). Under the service policy the run
// must fail with the policy's message; the control run, on the same pages
// without the policy, passes, which proves the recording would have
// leaked.

// policyBrowser launches a browser of its own with p, closed at the end of
// the test.
func policyBrowser(t testing.TB, p Policy) *Browser {
	t.Helper()
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Launch(ctx, LaunchOptions{Headless: true, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func replayWith(t testing.TB, b *Browser, rec *recording.Recording, opts Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return b.Replay(ctx, rec, opts, nil)
}

// serveOn serves h on a loopback address ("127.0.0.2:0") until the test ends.
func serveOn(t testing.TB, addr string, h http.Handler) *httptest.Server {
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

func html(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><html><head><title>t</title></head><body>"+body+"</body></html>")
	})
}

// failsWith checks that the run failed and that an executed action failed
// with a message containing want.
func failsWith(t *testing.T, res *Result, want string) {
	t.Helper()
	if res.Status != RunFailed {
		t.Fatalf("status = %s, want failed; %s", res.Status, summary(res))
	}
	if !strings.Contains(res.ErrorMessage, want) {
		t.Fatalf("error %q does not contain %q; %s", res.ErrorMessage, want, summary(res))
	}
	t.Logf("refused: %s", res.ErrorMessage)
}

func checkText(sel, want string) recording.Action {
	return checkpoint("elementText", want, &recording.Selector{CSS: sel})
}

func goNav(to string) recording.Action {
	return recording.Action{Type: recording.TypeNavigation, To: to}
}

func TestPolicyHostFileIsNotOpened(t *testing.T) {
	t.Parallel()
	hostFile := filepath.Join(t.TempDir(), "passwd")
	const hostText = "root:x:0:0:host-file-text"
	if err := os.WriteFile(hostFile, []byte(hostText), 0o644); err != nil {
		t.Fatal(err)
	}
	fileURL := "file://" + hostFile
	web := serveOn(t, "127.0.0.1:0", html(`<p id="p">web page</p>`))
	leak := containsText(hostText)
	service := policyBrowser(t, Policy{Service: true})
	local := needBrowser(t)

	tests := []struct {
		name string
		rec  *recording.Recording
		want string
	}{
		{"start page", newRec(fileURL, leak), "blocked by policy: " + fileURL},
		{"navigation", newRec(web.URL+"/", goNav(fileURL), leak), "blocked by policy: " + fileURL},
		{"view-source", newRec(web.URL+"/", goNav("view-source:"+fileURL), leak), "blocked by policy: view-source:" + fileURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failsWith(t, replayWith(t, service, tt.rec, quick()), tt.want)
			// Control: the local policy opens the file, so the check
			// above did stop a leak.
			if tt.name != "view-source" {
				wantStatus(t, replayWith(t, local, tt.rec, patient()), RunPassed)
			}
		})
	}
}

// patient are the options of runs that must pass: a loaded machine may
// take seconds to load a page.
func patient() Options {
	o := quick()
	o.Timeout = 20 * time.Second
	return o
}

func containsText(s string) recording.Action {
	return checkpoint("containsText", s, nil)
}

// secretServer serves a secret on 127.0.0.2, readable by any origin.
func secretServer(t *testing.T) *httptest.Server {
	return serveOn(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p id=\"leak\">SECRET-FROM-BLOCKED</p>")
	}))
}

func blockSecretPolicy(lookup func(context.Context, string) ([]netip.Addr, error)) *netguard.Policy {
	return &netguard.Policy{BlockedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, LookupIP: lookup}
}

func TestPolicyBlockedAddress(t *testing.T) {
	t.Parallel()
	secret := secretServer(t)
	_, secretPort, _ := net.SplitHostPort(secret.Listener.Addr().String())
	// rebind.test resolves to the blocked address, as a name under an
	// attacker's DNS would.
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "rebind.test" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
	byName := "http://rebind.test:" + secretPort + "/"
	mux := http.NewServeMux()
	mux.Handle("/fetch", html(`<button id="go" onclick="fetch(`+"`"+secret.URL+"/s`"+`).then(r => r.text()).then(t => { document.getElementById('out').innerHTML = t; }, e => { document.getElementById('out').textContent = 'error ' + e; })">go</button><div id="out"></div>`))
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, secret.URL+"/r", http.StatusFound)
	})
	mux.Handle("/frame", html(`<iframe id="f" src="`+secret.URL+`/f"></iframe>`))
	web := serveOn(t, "127.0.0.1:0", mux)
	leak := checkText("#leak", "SECRET-FROM-BLOCKED")

	service := policyBrowser(t, Policy{Service: true, Network: blockSecretPolicy(lookup)})
	// The control browser has a network policy that blocks nothing but
	// resolves the same names, so the same recordings reach the secret.
	control := policyBrowser(t, Policy{Service: true, Network: &netguard.Policy{LookupIP: lookup}})
	blockedMsg := "(RUN_BLOCKED_NETWORKS 127.0.0.2/32)"

	tests := []struct {
		name string
		rec  *recording.Recording
		want string
	}{
		{"start page", newRec(secret.URL+"/", leak), "blocked by policy: " + secret.URL + "/ " + blockedMsg},
		{"fetch from a page", newRec(web.URL+"/fetch", clickID("go"), checkText("#out #leak", "SECRET-FROM-BLOCKED")), "blocked by policy: " + secret.URL + "/s " + blockedMsg},
		{"redirect from an allowed URL", newRec(web.URL+"/fetch", goNav(web.URL+"/redirect"), leak), "blocked by policy: " + secret.URL + "/r " + blockedMsg},
		{"host name resolving to a blocked address", newRec(web.URL+"/fetch", goNav(byName), leak), "blocked by policy: " + byName + " " + blockedMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failsWith(t, replayWith(t, service, tt.rec, quick()), tt.want)
			wantStatus(t, replayWith(t, control, tt.rec, patient()), RunPassed)
		})
	}
	// A frame of a blocked address fails the run too (the frame's text
	// never shows in the top document, so there is no control here).
	failsWith(t, replayWith(t, service, newRec(web.URL+"/frame", containsText("")), quick()), "blocked by policy: "+secret.URL+"/f")
}

// wsServer answers a WebSocket handshake and sends one text message.
func wsServer(t *testing.T, msg string) *httptest.Server {
	return serveOn(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if key == "" {
			http.Error(w, "websocket only", http.StatusBadRequest)
			return
		}
		h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(h[:]))
		// One unmasked text frame (messages under 126 bytes).
		_, _ = rw.Write(append([]byte{0x81, byte(len(msg))}, msg...))
		_ = rw.Flush()
		// Hold the connection until the client goes.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = bufio.NewReader(rw).ReadByte()
	}))
}

func TestPolicyWebSocketToBlockedPort(t *testing.T) {
	t.Parallel()
	ws := wsServer(t, "SECRET-OVER-WS")
	wsAddr := ws.Listener.Addr().String()
	page := serveOn(t, "127.0.0.1:0", html(`<div id="out"></div><script>
		const s = new WebSocket('ws://`+wsAddr+`/');
		s.onmessage = (e) => { document.getElementById('out').textContent = e.data; };
		s.onerror = () => { document.getElementById('out').textContent = 'error'; };
	</script>`))
	rec := newRec(page.URL+"/", checkText("#out", "SECRET-OVER-WS"))
	// The WebSocket's port stands for one of the worker's own services
	// (Redis, say): blocked as an endpoint, host and port.
	ep := netip.MustParseAddrPort(wsAddr)
	service := policyBrowser(t, Policy{Service: true, Network: &netguard.Policy{BlockedEndpoints: []netip.AddrPort{ep}}})
	failsWith(t, replayWith(t, service, rec, quick()), "blocked by policy: "+wsAddr+" (the worker's own service at "+wsAddr+")")
	control := policyBrowser(t, Policy{Service: true, Network: &netguard.Policy{}})
	wantStatus(t, replayWith(t, control, rec, patient()), RunPassed)
}

func TestPolicyFileInput(t *testing.T) {
	t.Parallel()
	files := t.TempDir()
	outside := t.TempDir()
	secretFile := filepath.Join(outside, "secret.txt")
	for path, text := range map[string]string{
		filepath.Join(files, "ok.txt"): "ALLOWED-FILE",
		secretFile:                     "HOST-SECRET-FILE",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(secretFile, filepath.Join(files, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(files, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(files, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(files, secretFile)
	if err != nil {
		t.Fatal(err)
	}
	page := serveOn(t, "127.0.0.1:0", html(`<input type="file" id="f"><div id="out"></div><script>
		document.getElementById('f').addEventListener('change', async (e) => {
			document.getElementById('out').textContent = await e.target.files[0].text();
		});
	</script>`))
	upload := func(name, want string) *recording.Recording {
		return newRec(page.URL+"/", input(recording.Selector{ID: "f"}, name), checkText("#out", want))
	}
	service := policyBrowser(t, Policy{Service: true})
	opts := quick()
	opts.FilesDir = files

	okOpts := patient()
	okOpts.FilesDir = files
	wantStatus(t, replayWith(t, service, upload("ok.txt", "ALLOWED-FILE"), okOpts), RunPassed)
	// Every refusal reads the same, whether the file exists outside, is
	// a link out, is special, or does not exist at all.
	for _, name := range []string{secretFile, rel, "link.txt", "fifo", "sub", "missing.txt", "sub/../../x"} {
		t.Run(name, func(t *testing.T) {
			res := replayWith(t, service, upload(name, "HOST-SECRET-FILE"), opts)
			want := fmt.Sprintf("file to upload %q is not available: file inputs take names of regular files relative to FILES_PATH (no absolute paths, no .., no links leading outside)", name)
			failsWith(t, res, want)
			if res.ErrorMessage != want {
				t.Errorf("message %q, want exactly %q (it must not tell what exists)", res.ErrorMessage, want)
			}
		})
	}
	// Control: the local policy takes an absolute path, so the checks
	// above did stop a leak.
	wantStatus(t, replayWith(t, needBrowser(t), upload(secretFile, "HOST-SECRET-FILE"), okOpts), RunPassed)
}

// blockCounter counts OnBlock calls by rule.
type blockCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *blockCounter) add(rule string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[rule]++
}

func (c *blockCounter) get(rule string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[rule]
}

func TestPolicyDownloadCap(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3<<20)
	mux := http.NewServeMux()
	mux.Handle("/", html(`<a id="small" href="/small" download>small</a> <a id="big" href="/big" download>big</a>`))
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "small file")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		// In pieces, so that progress is reported before the end.
		for i := 0; i < len(big); i += 64 << 10 {
			if _, err := io.WriteString(w, big[i:i+64<<10]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
		}
	})
	page := serveOn(t, "127.0.0.1:0", mux)
	var blocks blockCounter
	b := policyBrowser(t, Policy{Service: true, MaxDownloadBytes: 1 << 20, OnBlock: blocks.add})
	// run replays rec and returns the result and the run's download
	// folder, as it was at the end of the run.
	run := func(rec *recording.Recording) (*Result, string, []string) {
		r := &replay{b: b, opts: patient().withDefaults()}
		r.clock = r.opts.Clock
		var dir string
		var files []string
		r.afterRun = func(ctx context.Context, s *session) {
			dir = s.guard.dir
			// Downloads finish on their own time: poll a while.
			for deadline := time.Now().Add(4 * time.Second); len(files) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && string(b) == "small file" {
						files = append(files, e.Name())
					}
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return r.run(ctx, rec), dir, files
	}
	// The small download lands in the run's folder while the page waits
	// for the next check.
	done := checkpoint("elementVisible", "", &recording.Selector{ID: "small"})
	res, dir, files := run(newRec(page.URL+"/", clickID("small"), done))
	wantStatus(t, res, RunPassed)
	if len(files) != 1 {
		t.Errorf("the small download is not in the run's folder: %v", files)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("download folder %s still there after the run (%v)", dir, err)
	}
	// The big download goes over the cap: the run fails with it. The
	// report may come during the click or the next action.
	res, dir, _ = run(newRec(page.URL+"/", clickID("big"), checkText("#nothing", "x")))
	failsWith(t, res, "blocked by policy: a download went over the 1 MB a run may download")
	if blocks.get(netguard.RuleDownload) == 0 {
		t.Error("the refusal was not counted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("download folder %s still there after the run (%v)", dir, err)
	}
}

// Through the proxy Chromium only knows that the proxy answered 502 (or
// refused the tunnel); the run's message still says why the server could
// not be reached, as it does without the proxy.
func TestPolicyUnreachableServerIsExplained(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b := policyBrowser(t, Policy{Service: true, Network: &netguard.Policy{}})
	for _, scheme := range []string{"http", "https"} {
		res := replayWith(t, b, newRec(scheme+"://"+addr+"/", containsText("x")), quick())
		failsWith(t, res, "connection refused")
	}
}
