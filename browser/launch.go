// Package browser replays SaveAction recordings in Chromium through Rod:
// launching and closing browsers, locating elements, performing actions,
// screenshots and video. It knows nothing of runs in a database.
package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/cdp"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/launcher/flags"
	"github.com/go-rod/rod/lib/proto"
)

// ErrNoChrome is returned by FindChrome when no Chromium binary is found.
var ErrNoChrome = errors.New("no Chromium found: set CHROME_BIN or put chromium, chromium-browser or google-chrome on PATH")

// chromeNames are the binaries looked up on PATH, in order.
func chromeNames() []string {
	return []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
}

// profilePrefix names the temporary profile folders Launch creates, so
// that the worker's start-up sweep (actors.SweepStaleBrowsers) can find
// those a killed process left behind.
const profilePrefix = "saveaction-chromium-"

// launchTimeout bounds starting Chromium and connecting to it when the
// caller's context has no earlier deadline.
const launchTimeout = 30 * time.Second

// FindChrome returns the Chromium binary to use: CHROME_BIN when set, else
// the first of chromium, chromium-browser, google-chrome on PATH. It never
// downloads a browser.
func FindChrome() (string, error) {
	if bin := os.Getenv("CHROME_BIN"); bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("CHROME_BIN %q: %w", bin, err)
		}
		return p, nil
	}
	for _, name := range chromeNames() {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChrome
}

// LaunchOptions configure Launch.
type LaunchOptions struct {
	// Bin is the Chromium binary; "" means FindChrome.
	Bin string
	// Headless runs without a window (the new headless mode).
	Headless bool
	// UserDataDir is the profile folder; "" means a fresh temporary folder
	// that Close removes.
	UserDataDir string
	// ExtraFlags are added to the command line, each as "--name" or
	// "--name=value".
	ExtraFlags []string
	// Policy is what the browser's pages may reach (see Policy); the zero
	// value is the local policy of `saveaction run`.
	Policy Policy
	// Logger receives a warning when Chromium had to start without its
	// sandbox; nil means no log.
	Logger *slog.Logger
}

// Browser is a running Chromium process and its DevTools connection. It is
// safe for concurrent use: each Replay uses its own browser context.
type Browser struct {
	rod     *rod.Browser
	life    context.Context    // ends with the connection
	cancel  context.CancelFunc // ends the connection's event loop
	proc    proc               // the browser process
	profile string             // the --user-data-dir its processes run with
	tempDir string             // removed on Close; "" when the caller owns the profile
	policy  Policy             // applied to every session
	sandbox bool               // Chromium runs with its sandbox

	closeOnce sync.Once
	closeErr  error

	spares spares // sessions made ahead (spare.go)

	// The video encoder ffmpeg offers, looked up once.
	encoderOnce sync.Once
	encoder     videoEncoder
	encoderErr  error
}

// Launch starts Chromium in its own process group (guarded by leakless where
// it works, so the browser dies with this process) and connects to it.
func Launch(ctx context.Context, o LaunchOptions) (*Browser, error) {
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = FindChrome(); err != nil {
			return nil, err
		}
	}
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, launchTimeout)
		defer cancel()
	}

	dir, tempDir := o.UserDataDir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", profilePrefix)
		if err != nil {
			return nil, fmt.Errorf("launch chromium: create profile folder: %w", err)
		}
		dir, tempDir = d, d
	}

	noSandbox := NoSandboxReason() != ""
	start := func(noSandbox bool) (string, int, error) {
		u, pid, err := startChrome(ctx, bin, dir, o, true, noSandbox)
		if err != nil && ctx.Err() == nil {
			// leakless needs to write and run a helper binary; some
			// sandboxes forbid that, so try once more without it.
			u, pid, err = startChrome(ctx, bin, dir, o, false, noSandbox)
		}
		return u, pid, err
	}
	u, pid, err := start(noSandbox)
	if err != nil && ctx.Err() == nil && !noSandbox {
		// Chromium's sandbox needs user namespaces (or its setuid helper);
		// a container's seccomp profile often forbids them. Run without it
		// rather than not at all, and say so.
		first := plain(err.Error())
		noSandbox = true
		if u, pid, err = start(true); err == nil && o.Logger != nil {
			o.Logger.Warn("Chromium runs WITHOUT its sandbox: it did not start with it (allow user namespaces, e.g. a seccomp profile that permits clone/unshare, to restore it)", "error", first)
		}
	}
	if err != nil {
		if tempDir != "" {
			_ = os.RemoveAll(tempDir)
		}
		return nil, fmt.Errorf("launch chromium %s: %w", bin, err)
	}

	b := &Browser{proc: procOf(pid), profile: dir, tempDir: tempDir, policy: o.Policy, sandbox: !noSandbox}
	client, err := cdp.StartWithURL(ctx, u, nil)
	if err != nil {
		b.kill()
		b.removeProfile()
		return nil, fmt.Errorf("connect to chromium at %s: %w", u, err)
	}
	life, cancel := context.WithCancel(context.Background())
	b.life, b.cancel = life, cancel
	// The rod browser's context lives as long as the connection (it feeds
	// the event loop), so Connect itself is bounded here by ctx.
	b.rod = rod.New().Client(client).Context(life)
	done := make(chan error, 1)
	go func() { done <- b.rod.Connect() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = b.Close()
		<-done // Close cancelled the connection's context, so Connect returns
		return nil, fmt.Errorf("connect to chromium at %s: %w", u, err)
	}
	return b, nil
}

// NoSandboxReason says why Chromium must run without its sandbox in this
// process, or "" when it can try with it: Chromium refuses to start as root
// with its sandbox on.
func NoSandboxReason() string {
	if os.Geteuid() == 0 {
		return "running as root: Chromium will not start its sandbox as root; run the worker as another user (the image does)"
	}
	return ""
}

func startChrome(ctx context.Context, bin, dir string, o LaunchOptions, leakless, noSandbox bool) (string, int, error) {
	l := launcher.New().Context(ctx).Bin(bin).Leakless(leakless).UserDataDir(dir).
		NoSandbox(noSandbox).
		Set("disable-gpu").
		Set("disable-quic").
		Set("disable-component-update").
		Set("disable-sync").
		Set("disable-background-networking").
		Set("no-first-run").
		Set("no-default-browser-check").
		Set("ignore-certificate-errors").
		Set("mute-audio").
		Set("password-store", "basic")
	if o.Policy.Network != nil {
		// WebRTC may send UDP straight to any address, around the proxy.
		l = l.Set("force-webrtc-ip-handling-policy", "disable_non_proxied_udp")
	}
	if o.Headless {
		l = l.HeadlessNew(true)
	} else {
		l = l.Headless(false)
	}
	for _, f := range o.ExtraFlags {
		name, value, hasValue := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if hasValue {
			l = l.Set(flags.Flag(name), value)
		} else {
			l = l.Set(flags.Flag(name))
		}
	}
	u, err := l.Launch()
	if err != nil {
		if pid := l.PID(); pid > 0 {
			procOf(pid).killTree()
		}
		return "", 0, err
	}
	return u, l.PID(), nil
}

// Sandboxed reports whether Chromium runs with its sandbox.
func (b *Browser) Sandboxed() bool { return b.sandbox }

// PID is the Chromium browser process id.
func (b *Browser) PID() int { return b.proc.pid }

// Alive reports whether the browser process is still running.
func (b *Browser) Alive() bool { return b.proc.alive() }

// Close kills the browser's process group at once (no graceful shutdown:
// the profile is throw-away) and removes a temporary profile. It is safe
// to call more than once.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		b.kill()
		b.closeSpares()
		b.closeErr = b.removeProfile()
	})
	return b.closeErr
}

func (b *Browser) kill() {
	if b.proc.pid > 0 {
		b.proc.killTree()
		b.proc.waitGone(2 * time.Second)
	}
	// Once the browser process is gone (it crashed, or was killed) its
	// process group can no longer be found from its pid, and its helpers
	// (zygotes, renderers, GPU) live on as orphans until they notice; one
	// stuck (a renderer being forked as its parent died, or stopped) never
	// does. Every process of this browser runs with its profile folder.
	if b.profile != "" {
		for pid, dir := range ProfileProcesses() {
			if dir == b.profile {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func (b *Browser) removeProfile() error {
	if b.tempDir == "" {
		return nil
	}
	if err := os.RemoveAll(b.tempDir); err != nil {
		return fmt.Errorf("remove chromium profile %s: %w", b.tempDir, err)
	}
	return nil
}

// target returns a DevTools client for the browser target bound to ctx.
func (b *Browser) target(ctx context.Context) cdpClient {
	return cdpClient{ctx: ctx, b: b.rod}
}

// cdpClient sends DevTools calls to one session (or to the browser when
// sid is empty) with one context, so that every call has a deadline.
type cdpClient struct {
	ctx context.Context
	b   *rod.Browser
	sid proto.TargetSessionID
}

// Call implements proto.Client.
func (c cdpClient) Call(ctx context.Context, sessionID, method string, params any) ([]byte, error) {
	return c.b.Call(ctx, sessionID, method, params)
}

// GetSessionID implements proto.Sessionable.
func (c cdpClient) GetSessionID() proto.TargetSessionID { return c.sid }

// GetContext implements proto.Contextable.
func (c cdpClient) GetContext() context.Context { return c.ctx }
