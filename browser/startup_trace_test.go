package browser

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/recording"
)

// TestStartPhases times each step of a run's start on a warm browser, with
// and without the network policy and spare sessions, interleaved so that
// every configuration sees the same load, and logs the medians. It is a
// measurement (set SAVEACTION_TRACE_START=1), not a check of speed.
func TestStartPhases(t *testing.T) {
	if os.Getenv("SAVEACTION_TRACE_START") == "" {
		t.Skip("a measurement: set SAVEACTION_TRACE_START=1")
	}
	needBrowser(t)
	type config struct {
		name    string
		b       *Browser
		phases  map[string][]time.Duration
		order   []string
		totals  []time.Duration
		toFirst []time.Duration
		cpu     time.Duration // Chromium's CPU time over the timed runs
	}
	guarded, err := Launch(context.Background(), LaunchOptions{Headless: true,
		Policy: Policy{Service: true, Network: &netguard.Policy{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer guarded.Close()
	spared, err := Launch(context.Background(), LaunchOptions{Headless: true,
		Policy: Policy{Service: true, Network: &netguard.Policy{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer spared.Close()
	spared.KeepSpares(1)
	flagged, err := Launch(context.Background(), LaunchOptions{Headless: true,
		Policy:     Policy{Service: true, Network: &netguard.Policy{}},
		ExtraFlags: strings.Fields(os.Getenv("SAVEACTION_TRACE_FLAGS"))})
	if err != nil {
		t.Fatal(err)
	}
	defer flagged.Close()
	flagged.KeepSpares(1)
	configs := []*config{{name: "plain", b: shared.b}, {name: "policy", b: guarded}, {name: "policy+spare", b: spared}, {name: "+flags", b: flagged}}
	rec := benchTen()
	n := 12
	if s := os.Getenv("SAVEACTION_TRACE_RUNS"); s != "" {
		fmt.Sscan(s, &n)
	}
	for i := 0; i < n+2; i++ {
		for _, c := range configs {
			if c.phases == nil {
				c.phases = map[string][]time.Duration{}
			}
			// Let a spare be made, as it would while the slot is idle.
			for deadline := time.Now().Add(10 * time.Second); c.b.spares.want > 0 && c.b.Spares() == 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			var mu sync.Mutex
			t0 := time.Now()
			last := t0
			ctx := context.WithValue(context.Background(), traceKey{}, func(step string) {
				mu.Lock()
				defer mu.Unlock()
				now := time.Now()
				if i >= 2 {
					if !slices.Contains(c.order, step) {
						c.order = append(c.order, step)
					}
					c.phases[step] = append(c.phases[step], now.Sub(last))
				}
				last = now
			})
			obs := &timingObserver{}
			cpu0 := groupCPU(c.b.PID())
			res := c.b.Replay(ctx, rec, quick(), obs)
			if i >= 2 {
				c.cpu += groupCPU(c.b.PID()) - cpu0
			}
			if res.Status != RunPassed {
				t.Fatal(res.ErrorMessage)
			}
			if i >= 2 {
				c.totals = append(c.totals, time.Since(t0))
				c.toFirst = append(c.toFirst, obs.first.Sub(t0))
			}
		}
	}
	for _, c := range configs {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%-13s replay %s, to first action %s, Chromium CPU per run %s:", c.name, med(c.totals), med(c.toFirst),
			(c.cpu / time.Duration(len(c.totals))).Round(time.Millisecond))
		for _, n := range c.order {
			fmt.Fprintf(&sb, " %s %s", n, med(c.phases[n]))
		}
		t.Log(sb.String())
	}
	t.Logf("spares made %d, taken %d", spared.spares.made, spared.spares.taken)
}

func med(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)/2].Round(100 * time.Microsecond)
}

// benchTen is the 10-action recording of the service's start-up benchmark:
// a click on each of five buttons, each followed by typing into an input.
func benchTen() *recording.Recording {
	var actions []recording.Action
	for i := 0; i < 10; i++ {
		n := fmt.Sprint(i / 2)
		if i%2 == 0 {
			actions = append(actions, clickID("b"+n))
		} else {
			actions = append(actions, input(recording.Selector{ID: "i" + n}, "value "+fmt.Sprint(i)))
		}
	}
	return newRec(fixtureURL("/static.html"), actions...)
}

// groupCPU is the CPU time used so far by Chromium's process group (its
// processes and the children they reaped): cpuByType's parts summed.
func groupCPU(pgid int) time.Duration {
	var total time.Duration
	for _, d := range cpuByType(pgid) {
		total += d
	}
	return total
}
