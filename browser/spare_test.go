package browser

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/recording"
)

// waitSpares waits (bounded) until b has n spares ready.
func waitSpares(t *testing.T, b *Browser, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.Spares() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares ready after 30 s, want %d", b.Spares(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionSeen is what a run's session was, read before it closed.
type sessionSeen struct {
	contextID proto.BrowserBrowserContextID
	dir       string
	proxy     string
	reads     []string
}

// replaySeen replays rec on b and notes its session and the given reads.
func replaySeen(t *testing.T, b *Browser, rec *recording.Recording, reads ...string) (*Result, sessionSeen) {
	t.Helper()
	var seen sessionSeen
	r := &replay{b: b, opts: patient().withDefaults()}
	r.clock = r.opts.Clock
	r.afterRun = func(ctx context.Context, s *session) {
		seen.contextID, seen.dir = s.contextID, s.guard.dir
		if s.guard.proxy != nil {
			seen.proxy = s.guard.proxy.URL()
		}
		for _, expr := range reads {
			var v any
			if err := s.evalExpr(ctx, expr, &v); err != nil {
				seen.reads = append(seen.reads, "error: "+err.Error())
				continue
			}
			seen.reads = append(seen.reads, fmt.Sprint(v))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return r.run(ctx, rec), seen
}

// A run that takes a spare gets a context no run used before, with a
// download folder and proxy of its own, and sees nothing an earlier run left
// (storage, cookies); the context it used is gone with its folder after it.
func TestSpareSessionsAreFreshPerRun(t *testing.T) {
	t.Parallel()
	b := policyBrowser(t, Policy{Service: true, Network: &netguard.Policy{}})
	b.KeepSpares(1)
	waitSpares(t, b, 1)
	leave := newRec(fixtureURL("/static.html"), clickID("b0"))
	res, first := replaySeen(t, b, leave,
		"localStorage.setItem('left', 'by run 1'), document.cookie = 'left=1; max-age=600', 'set'")
	wantStatus(t, res, RunPassed)
	if first.reads[0] != "set" {
		t.Fatalf("could not leave state: %v", first.reads)
	}
	waitSpares(t, b, 1)
	res, second := replaySeen(t, b, leave, "String(localStorage.getItem('left'))", "document.cookie")
	wantStatus(t, res, RunPassed)
	if taken := b.spares.taken; taken < 2 {
		t.Fatalf("spares taken = %d, want both runs to take one", taken)
	}
	if second.reads[0] != "null" || second.reads[1] != "" {
		t.Fatalf("the second run saw the first run's state: storage %q, cookies %q", second.reads[0], second.reads[1])
	}
	if second.contextID == first.contextID || second.dir == first.dir || second.proxy == first.proxy {
		t.Fatalf("two runs shared a context, folder or proxy: %+v / %+v", first, second)
	}
	if _, err := os.Stat(first.dir); !os.IsNotExist(err) {
		t.Fatalf("the first run's download folder outlived it: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	contexts, err := proto.TargetGetBrowserContexts{}.Call(b.target(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range contexts.BrowserContextIDs {
		if id == first.contextID || id == second.contextID {
			t.Fatalf("context %s of a finished run still open", id)
		}
	}
}

// A spare whose renderer died while it waited is thrown away; the run that
// would have taken it gets a sound session and passes.
func TestCrashedSpareIsNotUsed(t *testing.T) {
	t.Parallel()
	b := policyBrowser(t, Policy{})
	b.KeepSpares(1)
	waitSpares(t, b, 1)
	b.spares.mu.Lock()
	spare := b.spares.ready[0]
	b.spares.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = proto.PageCrash{}.Call(spare.client(ctx))
	if err := spare.waitState(ctx, func(navState) bool { return false }); err == nil || spare.crashErr() == nil {
		t.Fatalf("the spare's renderer did not crash: %v", err)
	}
	res, seen := replaySeen(t, b, newRec(fixtureURL("/static.html"), clickID("b0")))
	wantStatus(t, res, RunPassed)
	if seen.contextID == spare.contextID {
		t.Fatal("the run used the crashed spare")
	}
}

// Spares are sessions of the browser's policy: a run that takes one is
// refused what the policy refuses, like a run whose session was made for it.
func TestSparesApplyThePolicy(t *testing.T) {
	t.Parallel()
	secret := secretServer(t)
	b := policyBrowser(t, Policy{Service: true, Network: blockSecretPolicy(nil)})
	b.KeepSpares(1)
	rec := newRec(secret.URL+"/", checkText("#leak", "SECRET-FROM-BLOCKED"))
	for i := 0; i < 2; i++ {
		waitSpares(t, b, 1)
		failsWith(t, replayWith(t, b, rec, patient()), "blocked by policy: "+secret.URL+"/")
	}
	if b.spares.taken < 2 {
		t.Fatalf("spares taken = %d, want 2", b.spares.taken)
	}
}

// Close disposes of the spares: their proxies stop listening.
func TestCloseDisposesSpares(t *testing.T) {
	t.Parallel()
	needBrowser(t)
	b, err := Launch(context.Background(), LaunchOptions{Headless: true, Policy: Policy{Network: &netguard.Policy{}}})
	if err != nil {
		t.Fatal(err)
	}
	b.KeepSpares(2)
	waitSpares(t, b, 2)
	b.spares.mu.Lock()
	var proxies []string
	for _, s := range b.spares.ready {
		proxies = append(proxies, s.guard.proxy.URL())
	}
	b.spares.mu.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range proxies {
		if c, err := net.DialTimeout("tcp", p[len("http://"):], time.Second); err == nil {
			c.Close()
			t.Fatalf("a spare's proxy %s still listens after Close", p)
		}
	}
	if b.Spares() != 0 {
		t.Fatalf("%d spares kept after Close", b.Spares())
	}
}

// A run cancelled while it waits for the spare being made ends at once.
func TestCancelWhileWaitingForSpare(t *testing.T) {
	t.Parallel()
	b := policyBrowser(t, Policy{})
	b.spares.mu.Lock()
	b.spares.making++ // a spare that never comes
	b.spares.mu.Unlock()
	defer func() {
		b.spares.mu.Lock()
		b.spares.making--
		b.spares.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	done := make(chan *Result, 1)
	go func() { done <- b.Replay(ctx, newRec(fixtureURL("/static.html"), clickID("b0")), quick(), nil) }()
	select {
	case res := <-done:
		wantStatus(t, res, RunCancelled)
	case <-time.After(20 * time.Second):
		t.Fatal("a cancelled run kept waiting for a spare")
	}
}
