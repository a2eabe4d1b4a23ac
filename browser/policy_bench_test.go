package browser

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/recording"
)

// BenchmarkPolicyRun replays the same run in two browsers side by side:
// one without a network policy (direct) and one whose every request goes
// through the run's netguard proxy. The page loads 20 images and a script,
// then the run clicks and checks (with the start page, 22 requests), so
// the difference per run divided by the requests is the cost per request
// in the browser.
func BenchmarkPolicyRun(b *testing.B) {
	mux := http.NewServeMux()
	var imgs strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&imgs, `<img src="/img/%d.svg" width="10" height="10">`, i)
	}
	mux.Handle("/", html(imgs.String()+`<button id="go" onclick="document.getElementById('out').textContent='done'">go</button><div id="out"></div><script src="/app.js"></script>`))
	mux.HandleFunc("/img/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`)
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, `window.ready = true;`)
	})
	page := serveOn(b, "127.0.0.1:0", mux)
	rec := newRec(page.URL+"/", clickID("go"), checkpoint("elementText", "done", &recording.Selector{ID: "out"}))
	direct := policyBrowser(b, Policy{Service: true})
	proxied := policyBrowser(b, Policy{Service: true, Network: &netguard.Policy{BlockedNetworks: netguard.DefaultBlockedNetworks()}})
	opts := patient()
	run := func(br *Browser) time.Duration {
		start := time.Now()
		res := br.Replay(context.Background(), rec, opts, nil)
		if res.Status != RunPassed {
			b.Fatalf("run %s: %s", res.Status, res.ErrorMessage)
		}
		return time.Since(start)
	}
	// Warm both browsers (first-context costs), then alternate, so that
	// the load of a shared machine weighs on both alike.
	run(direct)
	run(proxied)
	var d, p time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			d += run(direct)
			p += run(proxied)
		} else {
			p += run(proxied)
			d += run(direct)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(d.Microseconds())/n/1000, "direct-ms/run")
	b.ReportMetric(float64(p.Microseconds())/n/1000, "proxy-ms/run")
	b.ReportMetric(float64((p-d).Microseconds())/n/1000, "added-ms/run")
}
