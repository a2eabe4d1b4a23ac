package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Proxy timeouts.
const (
	// dialTimeout bounds connecting to an upstream server.
	dialTimeout = 15 * time.Second
	// headerTimeout bounds reading a request's headers from Chromium.
	headerTimeout = 30 * time.Second
)

// BlockedHeader is set on the proxy's refusal so that a reader of the
// response can tell a policy refusal from an upstream error.
const BlockedHeader = "X-Saveaction-Blocked"

// Hooks are told what the proxy did; either may be nil. They are called
// from the proxy's goroutines.
type Hooks struct {
	// Blocked is called for every refused request.
	Blocked func(*Blocked)
	// Failed is called when an allowed upstream could not be reached
	// (addr is host:port), so that the browser's terse error (the proxy
	// answered 502) can be explained.
	Failed func(addr string, err error)
}

// Proxy is a forward HTTP proxy on a loopback port that lets through only
// what its Policy allows: plain HTTP requests in absolute form, and CONNECT
// tunnels (HTTPS, ws and wss). Every refusal is reported to the Hooks given
// to Listen and answered 403.
type Proxy struct {
	policy *Policy
	hooks  Hooks
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	tr     *http.Transport

	mu      sync.Mutex
	tunnels map[net.Conn]struct{} // hijacked connections, closed by Close
	closed  bool
	wg      sync.WaitGroup // tunnel goroutines
	served  chan struct{}  // closed when Serve returns
}

// Listen starts a proxy on 127.0.0.1 (a free port) enforcing p.
func Listen(p *Policy, hooks Hooks) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	x := &Proxy{policy: p, hooks: hooks, ln: ln, tunnels: map[net.Conn]struct{}{}, served: make(chan struct{})}
	x.tr = &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			c, err := p.DialContext(ctx, network, addr, targetOf(ctx, addr))
			x.failed(addr, err)
			return c, err
		},
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // the page's own timeouts decide
		// Chromium decides on compression; pass bodies through untouched.
		DisableCompression: true,
	}
	x.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Proxy-Authorization")
		},
		Transport:     x.tr,
		FlushInterval: -1, // stream (server-sent events, long polls)
		ErrorLog:      nil,
		ErrorHandler:  x.upstreamError,
	}
	x.srv = &http.Server{Handler: x, ReadHeaderTimeout: headerTimeout, ErrorLog: discardLog()}
	go func() {
		defer close(x.served)
		_ = x.srv.Serve(ln)
	}()
	return x, nil
}

// URL is the proxy's address for Chromium, "http://127.0.0.1:port".
func (x *Proxy) URL() string { return "http://" + x.ln.Addr().String() }

// Close stops the proxy and cuts every connection it holds, tunnels
// included, and waits for its goroutines.
func (x *Proxy) Close() error {
	x.mu.Lock()
	x.closed = true
	for c := range x.tunnels {
		_ = c.Close()
	}
	x.mu.Unlock()
	err := x.srv.Close()
	x.tr.CloseIdleConnections()
	<-x.served
	x.wg.Wait()
	return err
}

type targetKey struct{}

// withTarget remembers, for the dialer, what the page asked for (a URL),
// so that a refusal names it rather than host:port.
func withTarget(ctx context.Context, target string) context.Context {
	return context.WithValue(ctx, targetKey{}, target)
}

func targetOf(ctx context.Context, addr string) string {
	if t, ok := ctx.Value(targetKey{}).(string); ok && t != "" {
		return t
	}
	return addr
}

func (x *Proxy) blocked(w http.ResponseWriter, b *Blocked) {
	if x.hooks.Blocked != nil {
		x.hooks.Blocked(b)
	}
	w.Header().Set(BlockedHeader, b.Rule)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, b.Error()+"\n")
}

// ServeHTTP implements http.Handler.
func (x *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		x.connect(w, r)
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		target := r.URL.String()
		if b := x.policy.CheckHost(r.URL.Hostname(), target); b != nil {
			x.blocked(w, b)
			return
		}
		x.rp.ServeHTTP(w, r.WithContext(withTarget(r.Context(), target)))
	default:
		// Not a proxy request (someone talking to the port directly), or a
		// scheme a plain-HTTP proxy does not carry.
		http.Error(w, "not a proxy request", http.StatusBadRequest)
	}
}

func (x *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var b *Blocked
	if errors.As(err, &b) {
		x.blocked(w, b)
		return
	}
	w.WriteHeader(http.StatusBadGateway)
}

// connect opens a tunnel to r.Host for HTTPS or a WebSocket.
func (x *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	up, err := x.policy.DialContext(ctx, "tcp", r.Host, r.Host)
	cancel()
	x.failed(r.Host, err)
	if err != nil {
		var b *Blocked
		if errors.As(err, &b) {
			x.blocked(w, b)
			return
		}
		http.Error(w, "cannot connect", http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		_ = up.Close()
		http.Error(w, "cannot tunnel", http.StatusInternalServerError)
		return
	}
	down, rw, err := hj.Hijack()
	if err != nil {
		_ = up.Close()
		return
	}
	if !x.track(down, up) {
		_ = down.Close()
		_ = up.Close()
		return
	}
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		x.untrack(down, up)
		return
	}
	x.wg.Add(2)
	go func() {
		defer x.wg.Done()
		// Bytes Chromium sent after the CONNECT line are already buffered.
		if n := rw.Reader.Buffered(); n > 0 {
			buf, _ := rw.Reader.Peek(n)
			if _, err := up.Write(buf); err != nil {
				x.untrack(down, up)
				return
			}
		}
		_, _ = io.Copy(up, down)
		closeWrite(up)
	}()
	go func() {
		defer x.wg.Done()
		_, _ = io.Copy(down, up)
		x.untrack(down, up)
	}()
}

// failed reports an upstream that could not be reached (not a refusal).
func (x *Proxy) failed(addr string, err error) {
	var b *Blocked
	if err == nil || x.hooks.Failed == nil || errors.As(err, &b) {
		return
	}
	x.hooks.Failed(addr, err)
}

func (x *Proxy) track(cs ...net.Conn) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	for _, c := range cs {
		x.tunnels[c] = struct{}{}
	}
	return true
}

func (x *Proxy) untrack(cs ...net.Conn) {
	x.mu.Lock()
	for _, c := range cs {
		delete(x.tunnels, c)
		_ = c.Close()
	}
	x.mu.Unlock()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}
