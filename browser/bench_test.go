package browser

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// benchRecording is 50 actions alternating clicks and inputs on a static
// page.
func benchRecording() *recording.Recording {
	var actions []recording.Action
	for i := 0; i < 50; i++ {
		n := fmt.Sprint(i % 5)
		if i%2 == 0 {
			actions = append(actions, clickID("b"+n))
		} else {
			actions = append(actions, input(recording.Selector{ID: "i" + n}, "value "+fmt.Sprint(i)))
		}
	}
	return newRec(fixtureURL("/static.html"), actions...)
}

// BenchmarkReplayPerAction replays the 50-action recording in instant mode
// and reports the time per action (run start-up excluded).
func BenchmarkReplayPerAction(b *testing.B) {
	br := needBrowser(b)
	rec := benchRecording()
	opts := quick()
	var perAction time.Duration
	for i := 0; i < b.N; i++ {
		obs := &timingObserver{}
		res := br.Replay(context.Background(), rec, opts, obs)
		if res.Status != RunPassed {
			b.Fatalf("run %s: %s", res.Status, res.ErrorMessage)
		}
		perAction += obs.last.Sub(obs.first) / time.Duration(len(rec.Actions)-1)
	}
	b.ReportMetric(float64(perAction.Nanoseconds())/float64(b.N), "ns/action")
	b.ReportMetric(float64(perAction.Milliseconds())/float64(b.N), "ms/action")
}

// timingObserver notes when the first and the last action started.
type timingObserver struct{ first, last time.Time }

func (o *timingObserver) ActionStarted(i int, _ *recording.Action) {
	if i == 0 {
		o.first = time.Now()
	}
	o.last = time.Now()
}
func (o *timingObserver) ActionDone(ActionResult) {}

// BenchmarkStartWarmContext measures run start-up in a fresh incognito
// context of a running browser: context, page, start page loaded, closed.
func BenchmarkStartWarmContext(b *testing.B) {
	br := needBrowser(b)
	rec := newRec(fixtureURL("/static.html"))
	for i := 0; i < b.N; i++ {
		if res := br.Replay(context.Background(), rec, quick(), nil); res.Status != RunPassed {
			b.Fatal(res.ErrorMessage)
		}
	}
}

// BenchmarkStartNewBrowser measures the same with a browser launched for
// the run and closed after it.
func BenchmarkStartNewBrowser(b *testing.B) {
	needBrowser(b)
	rec := newRec(fixtureURL("/static.html"))
	for i := 0; i < b.N; i++ {
		br, err := Launch(context.Background(), LaunchOptions{Headless: true})
		if err != nil {
			b.Fatal(err)
		}
		res := br.Replay(context.Background(), rec, quick(), nil)
		_ = br.Close()
		if res.Status != RunPassed {
			b.Fatal(res.ErrorMessage)
		}
	}
}
