package browser

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-rod/rod/lib/proto"
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

// BenchmarkRawCDPPerAction replays the same 50 actions on the same page
// as BenchmarkReplayPerAction with a bare DevTools driver, the floor the
// replay is held to (within 1.5×): a click is one evaluation for the
// element's centre and a mouse press and release there; an input is one
// evaluation that focuses the field, sets its value and fires input and
// change. No locating strategies, no waiting for the element to be
// visible, enabled, still or uncovered, no check of what the action did,
// no rows: what the replay adds is what this leaves out.
func BenchmarkRawCDPPerAction(b *testing.B) {
	br := needBrowser(b)
	rec := benchRecording()
	var perAction time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ctx, err := br.rod.Incognito()
		if err != nil {
			b.Fatal(err)
		}
		page, err := ctx.Page(proto.TargetCreateTarget{URL: rec.URL})
		if err != nil {
			b.Fatal(err)
		}
		if err := page.WaitLoad(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for _, a := range rec.Actions {
			id := a.Selector.ID
			if a.Type == recording.TypeClick {
				res, err := page.Eval(`(id) => { const r = document.getElementById(id).getBoundingClientRect();
					return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; }`, id)
				if err != nil {
					b.Fatal(err)
				}
				x, y := res.Value.Get("x").Num(), res.Value.Get("y").Num()
				for _, t := range []proto.InputDispatchMouseEventType{proto.InputDispatchMouseEventTypeMousePressed, proto.InputDispatchMouseEventTypeMouseReleased} {
					if err := (proto.InputDispatchMouseEvent{Type: t, X: x, Y: y, Button: proto.InputMouseButtonLeft, ClickCount: 1}).Call(page); err != nil {
						b.Fatal(err)
					}
				}
				continue
			}
			if _, err := page.Eval(`(id, v) => { const el = document.getElementById(id); el.focus(); el.value = v;
				el.dispatchEvent(new Event('input', { bubbles: true })); el.dispatchEvent(new Event('change', { bubbles: true })); }`,
				id, *a.Value); err != nil {
				b.Fatal(err)
			}
		}
		// Timed as the replay is: from the first action's start to the last's.
		perAction += time.Since(start) / time.Duration(len(rec.Actions))
		b.StopTimer()
		if n, err := page.Eval(`() => Number(document.getElementById('count').textContent)`); err != nil || n.Value.Int() != 25 {
			b.Fatalf("the clicks did not land: count %v, %v", n, err)
		}
		_ = page.Close()
		_ = ctx.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(perAction.Nanoseconds())/float64(b.N), "ns/action")
	b.ReportMetric(float64(perAction.Milliseconds())/float64(b.N), "ms/action")
}
