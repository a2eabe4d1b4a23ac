package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	started, finished time.Time
	cfg               *config
	machine           string
	api               *apiResult
	start             *startResult
	tput              *tputResult
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pick(rs []wrkResult, f func(wrkResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Written by `make bench` (`go run ./internal/bench`); every figure below was taken in one run of it, side by side.\n\n")
	w("- Date: %s to %s (UTC)\n", r.started.Format("2006-01-02 15:04"), r.finished.Format("15:04"))
	w("- Machine: %s; PostgreSQL, Redis, Chromium and the load generator on the same box (the load average beside each figure says how busy it was)\n", r.machine)
	w("- Settings: wrk -t2, %s per measure, %d repetitions (median of them), targets in turn within each repetition\n\n",
		r.cfg.dur, r.cfg.reps)
	if a := r.api; a != nil {
		w("## API (wrk, %d runs seeded)\n\n", a.runs)
		w("`ours` is `saveaction api` with production defaults: bearer-token auth, the per-token rate limit counted in Redis (limit set above what wrk reaches), the JSON request log on (to a file). `floor` is `internal/bench/floor`: Fiber v2 + pgxpool doing the same SELECT with no auth, limit or log.")
		if slices.Contains(a.targets, "before") {
			w(" `before` is the binary given with -before (main's code), measured in the same repetitions.")
		}
		w("\n\n| endpoint | conns | target | req/s | p50 ms | p99 ms | req/s vs floor | p99 vs floor | load avg |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, ep := range a.endpoints {
			for _, n := range a.conns {
				fl := a.reps[apiKey(ep.name, n, "floor")]
				frps, fp99 := median(pick(fl, func(x wrkResult) float64 { return x.rps })), median(pick(fl, func(x wrkResult) float64 { return x.p99 }))
				for _, t := range a.targets {
					rs := a.reps[apiKey(ep.name, n, t)]
					rps := median(pick(rs, func(x wrkResult) float64 { return x.rps }))
					p50 := median(pick(rs, func(x wrkResult) float64 { return x.p50 }))
					p99 := median(pick(rs, func(x wrkResult) float64 { return x.p99 }))
					loads := make([]string, len(rs))
					bad := 0
					for i, x := range rs {
						loads[i] = x.load
						bad += x.non2xx + x.errors
					}
					ratio, p99r := "", ""
					if t != "floor" {
						ratio = fmt.Sprintf("**%.0f %%**", 100*rps/frps)
						p99r = fmt.Sprintf("**%.1f×**", p99/fp99)
					}
					note := ""
					if bad > 0 {
						note = fmt.Sprintf(" (%d non-2xx/errors)", bad)
					}
					w("| %s | %d | %s | %.0f%s | %.2f | %.2f | %s | %s | %s |\n", ep.name, n, t, rps, note, p50, p99, ratio, p99r, strings.Join(loads, ", "))
				}
			}
		}
		w("\n")
	}
	if s := r.start; s != nil {
		w("## A run: POST → passed (`saveaction dev`, 1 slot, 10-action instant recording of a static page)\n\n")
		gap := "back to back"
		if r.cfg.startGap > 0 {
			gap = fmt.Sprintf("each posted %s after the previous one finished (a run arriving at an idle worker)", r.cfg.startGap)
		}
		w("%d runs per binary per repetition, one at a time, %s, after two warm-up runs (Chromium already launched). Each binary with its defaults. Medians; the parts come from the run's and its rows' timestamps (ms precision) and the client's clock.\n\n", r.cfg.starts, gap)
		w("| binary | POST → passed | actions | outside the actions | POST sent → created (request arrival) | queue → started | started → first action (context, page, start page) | last action → completed (final write) | completed → run.finished seen |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, t := range s.targets {
			ss := s.samples[t]
			f := func(g func(startSample) time.Duration) string { return ms(medianOf(ss, g)) }
			w("| %s | **%s** | %s | **%s** | %s | %s | %s | %s | %s |\n", t,
				f(func(x startSample) time.Duration { return x.total }), f(func(x startSample) time.Duration { return x.actions }),
				f(startSample.outside), f(func(x startSample) time.Duration { return x.post }),
				f(func(x startSample) time.Duration { return x.queue }), f(func(x startSample) time.Duration { return x.setup }),
				f(func(x startSample) time.Duration { return x.finish }), f(func(x startSample) time.Duration { return x.notify }))
		}
		w("\nLoad average after each node: %s\n\n", strings.Join(s.load, ", "))
	}
	if t := r.tput; t != nil {
		w("## Throughput (`saveaction dev`, 2 slots, %d runs queued at once)\n\n", t.queued)
		w("| binary | runs/min (median) | each repetition |\n|---|---|---|\n")
		for _, name := range t.targets {
			xs := t.perMin[name]
			parts := make([]string, len(xs))
			for i, x := range xs {
				parts[i] = fmt.Sprintf("%.0f", x)
			}
			w("| %s | **%.0f** | %s |\n", name, median(xs), strings.Join(parts, ", "))
		}
		w("\nLoad average after each node: %s\n\n", strings.Join(t.load, ", "))
	}
	return b.String()
}
