package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is one wrk measure.
type wrkResult struct {
	rps      float64
	p50, p99 float64 // ms
	non2xx   int
	errors   int
	load     string // 1-minute load average when it ended
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkRun runs Debian's wrk (2 threads, --latency) against url.
func wrkRun(ctx context.Context, dir, url, token, method, body string, conns int, dur time.Duration) (wrkResult, error) {
	args := []string{"-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(dur.Seconds())), "--latency", "--timeout", "5s"}
	if token != "" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	if method != "GET" {
		script := filepath.Join(dir, "post.lua")
		lua := fmt.Sprintf("wrk.method = %q\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", method, body)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			return wrkResult{}, err
		}
		args = append(args, "-s", script)
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{load: loadavg()}
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range reLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	if strings.TrimSpace(out) == "" {
		return r, fmt.Errorf("wrk printed nothing")
	}
	return r, nil
}
