package browser

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestChromiumCPUBreakdown (SAVEACTION_TRACE_START=1) replays the 10-action
// recording and logs Chromium's CPU per run by process type.
func TestChromiumCPUBreakdown(t *testing.T) {
	if os.Getenv("SAVEACTION_TRACE_START") == "" {
		t.Skip("a measurement: set SAVEACTION_TRACE_START=1")
	}
	flags := strings.Fields(os.Getenv("SAVEACTION_TRACE_FLAGS"))
	b, err := Launch(context.Background(), LaunchOptions{Headless: true, ExtraFlags: flags})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := benchTen()
	for i := 0; i < 2; i++ {
		b.Replay(context.Background(), rec, quick(), nil)
	}
	before := cpuByType(b.PID())
	const n = 10
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if res := b.Replay(context.Background(), rec, quick(), nil); res.Status != RunPassed {
			t.Fatal(res.ErrorMessage)
		}
	}
	el := time.Since(t0)
	after := cpuByType(b.PID())
	var keys []string
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	var total time.Duration
	for _, k := range keys {
		d := (after[k] - before[k]) / n
		total += d
		fmt.Fprintf(&sb, " %s %s;", k, d)
	}
	t.Logf("flags %v: per run %s wall, Chromium CPU %s:%s", flags, el/n, total, sb.String())
}

func cpuByType(pgid int) map[string]time.Duration {
	out := map[string]time.Duration{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 15 || f[2] != fmt.Sprint(pgid) {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		typ := "browser"
		for _, a := range strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " ")) {
			if v, ok := strings.CutPrefix(a, "--type="); ok {
				typ = v
			}
			if v, ok := strings.CutPrefix(a, "--utility-sub-type="); ok {
				typ += "/" + v
			}
		}
		var own, kids int64
		for j, k := range f[11:15] {
			var n int64
			fmt.Sscan(k, &n)
			if j < 2 {
				own += n
			} else {
				kids += n
			}
		}
		out[typ] += time.Duration(own) * 10 * time.Millisecond
		out[typ+"(reaped children)"] += time.Duration(kids) * 10 * time.Millisecond
	}
	return out
}
