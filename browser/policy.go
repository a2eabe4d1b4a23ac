package browser

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/recording"
)

// DefaultMaxDownloadBytes caps what one run may download when
// Policy.MaxDownloadBytes is 0.
const DefaultMaxDownloadBytes = 100 << 20

// downloadPrefix names the per-run download folders.
const downloadPrefix = "saveaction-downloads-"

// Policy is what the pages of a browser may reach. It is set once per
// browser (LaunchOptions.Policy) and applies to every run in it. The zero
// value is the local policy of `saveaction run`: Chromium's own rules only,
// file inputs anywhere, downloads to a per-run folder.
type Policy struct {
	// Service applies the service policy (api, worker, dev): only http and
	// https pages are opened (start URL, navigations); no frame, request
	// or download may use file:, chrome:, devtools:, view-source:,
	// chrome-extension: or filesystem: URLs; file inputs take names
	// relative to Options.FilesDir only.
	Service bool
	// Network, when not nil, sends every request of each run through a
	// filtering proxy of its own that applies it (on resolved addresses).
	Network *netguard.Policy
	// MaxDownloadBytes caps the bytes one run may download; 0 means
	// DefaultMaxDownloadBytes. A download over the cap is cancelled and
	// fails the action, like any other blocked request.
	MaxDownloadBytes int64
	// OnBlock, when set, is called with the rule (a netguard.Rule
	// constant) of every refused request, from any goroutine: a metric.
	OnBlock func(rule string)
}

// guard enforces the browser's Policy for one session and remembers what
// it refused, so that the action running when it happened fails with it.
type guard struct {
	policy Policy
	proxy  *netguard.Proxy // nil without a network policy
	dir    string          // per-run download folder, removed on close

	mu        sync.Mutex
	refusals  []string // messages, in order
	reported  int      // refusals already handed to an action
	frames    map[proto.PageFrameID]bool
	downloads map[string]int64  // guid -> bytes received, of this session's downloads
	uploads   int               // upload copies made
	failures  map[string]string // host:port -> why the proxy could not reach it, last few
}

// maxFailures bounds the upstream failures a guard remembers.
const maxFailures = 32

// upstreamFailed remembers why the proxy could not reach addr.
func (g *guard) upstreamFailed(addr string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failures == nil || len(g.failures) >= maxFailures {
		g.failures = map[string]string{}
	}
	g.failures[addr] = plain(err.Error())
}

// explain adds to a navigation error of u why the proxy could not reach
// its server, when it knows: through the proxy, Chromium only says that
// the proxy answered 502 or refused the tunnel.
func (g *guard) explain(u, errorText string) string {
	if g == nil || g.proxy == nil {
		return errorText
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return errorText
	}
	port := pu.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}[pu.Scheme]
	}
	g.mu.Lock()
	why, ok := g.failures[net.JoinHostPort(pu.Hostname(), port)]
	g.mu.Unlock()
	if !ok {
		return errorText
	}
	return errorText + " (" + why + ")"
}

// newGuard starts the proxy (when there is a network policy) and creates
// the download folder in parent ("" means the system's temporary folder).
// Launch passes the browser's temporary profile, so that the folders of a
// killed worker go with the sweep of its stale profiles.
func newGuard(p Policy, parent string) (*guard, error) {
	g := &guard{policy: p, frames: map[proto.PageFrameID]bool{}, downloads: map[string]int64{}}
	if g.policy.MaxDownloadBytes <= 0 {
		g.policy.MaxDownloadBytes = DefaultMaxDownloadBytes
	}
	dir, err := os.MkdirTemp(parent, downloadPrefix)
	if err != nil {
		return nil, fmt.Errorf("create download folder: %w", err)
	}
	g.dir = dir
	if p.Network != nil {
		x, err := netguard.Listen(p.Network, netguard.Hooks{
			Blocked: func(b *netguard.Blocked) { g.refuse(b.Rule, b.Error()) },
			Failed:  g.upstreamFailed,
		})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start network guard: %w", err)
		}
		g.proxy = x
	}
	return g, nil
}

// contextParams routes the browser context through the proxy. Chromium
// sends loopback requests around a proxy unless told not to.
func (g *guard) contextParams() proto.TargetCreateBrowserContext {
	if g == nil || g.proxy == nil {
		return proto.TargetCreateBrowserContext{}
	}
	return proto.TargetCreateBrowserContext{ProxyServer: g.proxy.URL(), ProxyBypassList: "<-loopback>"}
}

// setUp applies the policy to the new page: downloads into the run's
// folder, and (service policy) interception of the refused schemes, which
// Chromium would otherwise load for a browser-initiated request.
func (g *guard) setUp(ctx context.Context, s *session) error {
	if err := (proto.BrowserSetDownloadBehavior{
		Behavior:         proto.BrowserSetDownloadBehaviorBehaviorAllowAndName,
		BrowserContextID: s.contextID,
		DownloadPath:     g.dir,
		EventsEnabled:    true,
	}).Call(s.b.target(ctx)); err != nil {
		return fmt.Errorf("set download folder: %s", cdpMessage(err))
	}
	g.mu.Lock()
	g.frames[proto.PageFrameID(s.targetID)] = true
	g.mu.Unlock()
	if !g.policy.Service {
		return nil
	}
	var patterns []*proto.FetchRequestPattern
	for _, scheme := range recording.BlockedSchemes() {
		patterns = append(patterns, &proto.FetchRequestPattern{URLPattern: scheme + ":*"})
	}
	if err := s.do(ctx, proto.FetchEnable{Patterns: patterns}); err != nil {
		return fmt.Errorf("set up URL policy: %w", err)
	}
	return nil
}

// close stops the proxy and removes the downloads.
func (g *guard) close() {
	if g == nil {
		return
	}
	if g.proxy != nil {
		_ = g.proxy.Close()
	}
	_ = os.RemoveAll(g.dir)
}

// refuse records a refusal, for the action running, and counts it.
func (g *guard) refuse(rule, msg string) {
	g.mu.Lock()
	g.refusals = append(g.refusals, msg)
	g.mu.Unlock()
	g.count(rule)
}

// count tells the metric of a refusal.
func (g *guard) count(rule string) {
	if g.policy.OnBlock != nil {
		g.policy.OnBlock(rule)
	}
}

// take returns the first refusal not yet reported (nil when none) and
// marks every refusal so far as reported.
func (g *guard) take() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reported >= len(g.refusals) {
		return nil
	}
	msg := g.refusals[g.reported]
	g.reported = len(g.refusals)
	return &blockedError{msg: msg}
}

// blockedError is an action failed by the policy.
type blockedError struct{ msg string }

func (e *blockedError) Error() string { return e.msg }

// checkNavigation applies the service policy to a URL the replay is about
// to open.
func (g *guard) checkNavigation(u string) error {
	if g == nil || !g.policy.Service {
		return nil
	}
	if err := recording.CheckNavigationURL(u); err != nil {
		g.count(netguard.RuleScheme) // the caller reports it, as its error
		return &blockedError{msg: err.Error()}
	}
	return nil
}

// event looks at a DevTools event for the policy. It reports whether the
// event was the guard's alone (the session need not look at it).
func (g *guard) event(s *session, sid proto.TargetSessionID, msg *rod.Message) bool {
	switch msg.Method {
	case "Fetch.requestPaused":
		if msg.SessionID != sid || sid == "" {
			return true
		}
		var e proto.FetchRequestPaused
		if !msg.Load(&e) {
			return true
		}
		// Only the refused schemes are intercepted (setUp).
		reason := "blocked by policy: " + e.Request.URL
		if err := recording.CheckResourceURL(e.Request.URL); err != nil {
			reason = err.Error()
		}
		g.refuse(netguard.RuleScheme, reason)
		ctx, cancel := context.WithTimeout(s.stopped, closeTimeout)
		_ = proto.FetchFailRequest{RequestID: e.RequestID, ErrorReason: proto.NetworkErrorReasonBlockedByClient}.Call(s.client(ctx))
		cancel()
		return true
	case "Page.frameAttached":
		var e proto.PageFrameAttached
		if msg.SessionID == sid && sid != "" && msg.Load(&e) {
			g.mu.Lock()
			g.frames[e.FrameID] = true
			g.mu.Unlock()
		}
	case "Page.frameNavigated":
		var e proto.PageFrameNavigated
		if msg.SessionID == sid && sid != "" && msg.Load(&e) && e.Frame != nil {
			g.mu.Lock()
			g.frames[e.Frame.ID] = true
			g.mu.Unlock()
			if g.policy.Service {
				// Whatever got a frame there (a link, a script), the page
				// is now showing what the policy refuses.
				if err := recording.CheckResourceURL(e.Frame.URL); err != nil {
					g.refuse(netguard.RuleScheme, err.Error())
				}
			}
		}
	case "Browser.downloadWillBegin":
		var e proto.BrowserDownloadWillBegin
		if !msg.Load(&e) {
			return true
		}
		g.mu.Lock()
		ours := g.frames[e.FrameID]
		if ours {
			g.downloads[e.GUID] = 0
		}
		g.mu.Unlock()
		if ours && g.policy.Service {
			if err := recording.CheckResourceURL(e.URL); err != nil {
				g.refuse(netguard.RuleScheme, err.Error())
				g.cancelDownload(s, e.GUID)
			}
		}
		return true
	case "Browser.downloadProgress":
		var e proto.BrowserDownloadProgress
		if !msg.Load(&e) {
			return true
		}
		g.mu.Lock()
		_, ours := g.downloads[e.GUID]
		var total int64
		if ours {
			g.downloads[e.GUID] = int64(e.ReceivedBytes)
			for _, n := range g.downloads {
				total += n
			}
		}
		g.mu.Unlock()
		if ours && e.State == proto.BrowserDownloadProgressStateInProgress && total > g.policy.MaxDownloadBytes {
			g.refuse(netguard.RuleDownload, fmt.Sprintf("blocked by policy: a download went over the %d MB a run may download", g.policy.MaxDownloadBytes>>20))
			g.cancelDownload(s, e.GUID)
		}
		return true
	}
	return false
}

func (g *guard) cancelDownload(s *session, guid string) {
	ctx, cancel := context.WithTimeout(s.stopped, closeTimeout)
	defer cancel()
	_ = proto.BrowserCancelDownload{GUID: guid, BrowserContextID: s.contextID}.Call(s.b.target(ctx))
	g.mu.Lock()
	delete(g.downloads, guid)
	g.mu.Unlock()
}

// isBlocked reports whether err is a policy refusal.
func isBlocked(err error) bool {
	var b *blockedError
	return errors.As(err, &b)
}
