package simulate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/recording"
)

// jumpClock advances at once by every wait asked of it, so timing is
// checked without sleeping.
type jumpClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jumpClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

type observed struct {
	started []int
	done    []browser.ActionResult
}

func (o *observed) ActionStarted(i int, _ *recording.Action) { o.started = append(o.started, i) }
func (o *observed) ActionDone(r browser.ActionResult)        { o.done = append(o.done, r) }

// rec is n clicks recorded gapMs apart.
func rec(n int, gapMs float64) *recording.Recording {
	r := &recording.Recording{URL: "http://127.0.0.1/"}
	for i := 0; i < n; i++ {
		r.Actions = append(r.Actions, recording.Action{ID: "act_" + string(rune('a'+i)), Type: recording.TypeClick,
			Timestamp: 1000 + float64(i)*gapMs})
	}
	return r
}

func TestTimingFollowsTheRecordingAndOptions(t *testing.T) {
	cases := []struct {
		name string
		opts browser.Options
		want time.Duration
	}{
		{"timing off", browser.Options{}, 0},
		{"realistic", browser.Options{TimingEnabled: true, TimingMode: browser.TimingRealistic}, 4 * time.Second},
		{"default mode is realistic", browser.Options{TimingEnabled: true}, 4 * time.Second},
		{"fast", browser.Options{TimingEnabled: true, TimingMode: browser.TimingFast}, time.Second},
		{"instant", browser.Options{TimingEnabled: true, TimingMode: browser.TimingInstant}, 0},
		{"speed 2", browser.Options{TimingEnabled: true, SpeedMultiplier: 2}, 2 * time.Second},
		// Each wait is capped: the 4 s of offsets come in 1 s steps, so a
		// cap of 500 ms makes each of the 4 waits 500 ms.
		{"capped", browser.Options{TimingEnabled: true, MaxActionDelay: 500 * time.Millisecond}, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &jumpClock{now: time.Unix(1_700_000_000, 0)}
			r, err := New(Config{Clock: clock, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			var obs observed
			res := r.Replay(context.Background(), rec(5, 1000), c.opts, &obs)
			if res.Status != browser.RunPassed || res.ActionsExecuted != 5 || len(obs.done) != 5 || len(obs.started) != 5 {
				t.Fatalf("status %s executed %d done %d started %d", res.Status, res.ActionsExecuted, len(obs.done), len(obs.started))
			}
			if got := time.Duration(res.DurationMs) * time.Millisecond; got != c.want {
				t.Fatalf("took %s, want %s", got, c.want)
			}
		})
	}
}

func TestActionTimeAddsToEachAction(t *testing.T) {
	clock := &jumpClock{now: time.Unix(1_700_000_000, 0)}
	r, _ := New(Config{Clock: clock, ActionTime: 30 * time.Millisecond, Seed: 1})
	var obs observed
	res := r.Replay(context.Background(), rec(4, 0), browser.Options{}, &obs)
	if res.DurationMs != 120 {
		t.Fatalf("duration %d ms, want 120", res.DurationMs)
	}
	for _, d := range obs.done {
		if d.DurationMs != 30 || d.StartedAt.IsZero() || d.Status != browser.StatusSuccess {
			t.Fatalf("action %+v", d)
		}
	}
}

func TestFailureRateOneFailsEveryRun(t *testing.T) {
	for _, cont := range []bool{false, true} {
		r, _ := New(Config{FailureRate: 1, Seed: 7, Clock: &jumpClock{}})
		for i := 0; i < 20; i++ {
			var obs observed
			res := r.Replay(context.Background(), rec(6, 10), browser.Options{ContinueOnError: cont}, &obs)
			if res.Status != browser.RunFailed || res.Crashed || res.ErrorMessage != FailureMessage || res.ActionsFailed != 1 {
				t.Fatalf("continue=%v: %+v", cont, res)
			}
			if len(obs.done) != 6 {
				t.Fatalf("observer heard of %d actions, want 6", len(obs.done))
			}
			failedAt := -1
			for j, d := range obs.done {
				if d.Index != j {
					t.Fatalf("action %d reported as index %d", j, d.Index)
				}
				switch {
				case d.Status == browser.StatusFailed:
					failedAt = j
				case failedAt >= 0 && !cont && (d.Status != browser.StatusSkipped || d.Reason != browser.ReasonPreviousFailed):
					t.Fatalf("action after the failure: %+v", d)
				case failedAt >= 0 && cont && d.Status != browser.StatusSuccess:
					t.Fatalf("continue on error, action after the failure: %+v", d)
				}
			}
			if res.ErrorActionID != obs.done[failedAt].ActionID {
				t.Fatalf("error action %q, failed %q", res.ErrorActionID, obs.done[failedAt].ActionID)
			}
		}
	}
}

func TestCrashRateOneCrashesAndZeroNever(t *testing.T) {
	r, _ := New(Config{CrashRate: 1, Seed: 3, Clock: &jumpClock{}})
	res := r.Replay(context.Background(), rec(3, 10), browser.Options{}, nil)
	if !res.Crashed || res.Status != browser.RunFailed || res.ErrorMessage != CrashMessage {
		t.Fatalf("crash rate 1: %+v", res)
	}
	r, _ = New(Config{Seed: 3, Clock: &jumpClock{}})
	for i := 0; i < 50; i++ {
		if res := r.Replay(context.Background(), rec(3, 10), browser.Options{}, nil); res.Crashed || res.Status != browser.RunPassed {
			t.Fatalf("rates 0: %+v", res)
		}
	}
}

func TestRatesAreRoughlyHonoured(t *testing.T) {
	r, _ := New(Config{FailureRate: 0.3, Seed: 11, Clock: &jumpClock{}})
	failed := 0
	const n = 2000
	for i := 0; i < n; i++ {
		if r.Replay(context.Background(), rec(2, 0), browser.Options{}, nil).Status == browser.RunFailed {
			failed++
		}
	}
	if got := float64(failed) / n; got < 0.25 || got > 0.35 {
		t.Fatalf("failure share %.3f, want about 0.3", got)
	}
}

func TestCancelSkipsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var obs observed
	r, _ := New(Config{Seed: 1})
	res := r.Replay(ctx, rec(3, 1000), browser.Options{TimingEnabled: true}, &obs)
	if res.Status != browser.RunCancelled || res.ActionsSkipped != 3 || len(obs.started) != 0 {
		t.Fatalf("%+v", res)
	}
	for _, d := range obs.done {
		if d.Reason != browser.ReasonCancelled {
			t.Fatalf("%+v", d)
		}
	}
}

func TestCancelDuringAWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var obs observed
	r, _ := New(Config{Seed: 1})
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	// The second action is due a minute in: the cancel lands during the wait.
	res := r.Replay(ctx, rec(3, 60_000), browser.Options{TimingEnabled: true, MaxActionDelay: time.Minute}, &obs)
	if res.Status != browser.RunCancelled || res.ActionsExecuted != 1 || res.ActionsSkipped != 2 {
		t.Fatalf("%+v", res)
	}
}

func TestBadRatesRefused(t *testing.T) {
	for _, c := range []Config{{FailureRate: -0.1}, {CrashRate: 1.5}, {ActionTime: -time.Second}} {
		if _, err := New(c); err == nil {
			t.Fatalf("%+v accepted", c)
		}
	}
	if res := (&Replayer{clock: realClock{}}).Replay(context.Background(), nil, browser.Options{}, nil); res.Status != browser.RunFailed {
		t.Fatalf("nil recording: %+v", res)
	}
}
