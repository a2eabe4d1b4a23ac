package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/recording"
)

// Exit codes of `saveaction run`.
const (
	exitPassed  = 0
	exitFailed  = 1 // a run failed or was cancelled
	exitInvalid = 2 // bad options or an invalid recording
)

// availableBrowsers are the browsers this build can drive.
var availableBrowsers = []string{"chromium"}

const runUsage = `Usage: saveaction run [flags] FILE...

Replays SaveAction recordings in a local Chromium (no database, no Redis).
Exit status: 0 all passed, 1 a run failed or was cancelled, 2 invalid options or recording.

Flags:
`

// runFlags are the parsed options of `saveaction run`.
type runFlags struct {
	json, headed, noTiming, continueOnError bool
	servicePolicy                           bool
	junit, browserName, timingMode          string
	screenshots, screenshotMode, video      string
	filesDir                                string
	timeout                                 time.Duration
	speed                                   float64
	vars                                    map[string]string
	files                                   []string
}

// varFlag collects repeated --var NAME=VALUE.
type varFlag map[string]string

func (v varFlag) String() string { return "" }

func (v varFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	v[strings.TrimSpace(name)] = value
	return nil
}

// msDuration accepts "30s" style durations or a bare number of milliseconds.
type msDuration struct{ d *time.Duration }

func (m msDuration) String() string {
	if m.d == nil {
		return ""
	}
	return m.d.String()
}

func (m msDuration) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*m.d = time.Duration(n * float64(time.Millisecond))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or milliseconds, got %q", s)
	}
	*m.d = d
	return nil
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{vars: map[string]string{}, timeout: browser.DefaultTimeout}
	fs := flag.NewFlagSet("saveaction run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	fs.BoolVar(&f.json, "json", false, "print each result as one JSON object on stdout")
	fs.StringVar(&f.junit, "junit", "", "write a JUnit XML report to `FILE`")
	fs.Var(varFlag(f.vars), "var", "set a recording variable, `NAME=VALUE` (repeatable)")
	fs.StringVar(&f.browserName, "browser", "chromium", "browser to use (only chromium)")
	fs.BoolVar(&f.headed, "headed", false, "show the browser window")
	fs.Var(msDuration{&f.timeout}, "timeout", "per-action timeout, e.g. 30s or 30000 (ms); 1s to 600s")
	fs.StringVar(&f.timingMode, "timing-mode", browser.TimingRealistic, "realistic, fast or instant")
	fs.Float64Var(&f.speed, "speed", 1, "speed multiplier, 0.1 to 10 (2 is twice as fast)")
	fs.BoolVar(&f.noTiming, "no-timing", false, "replay without the recorded pauses")
	fs.StringVar(&f.screenshots, "screenshots", "", "save screenshots in `DIR`")
	fs.StringVar(&f.screenshotMode, "screenshot-mode", browser.ScreenshotOnFailure, "on-failure, always or never (with --screenshots)")
	fs.StringVar(&f.video, "video", "", "record a video of each run in `DIR` (needs ffmpeg)")
	fs.StringVar(&f.filesDir, "files", "", "folder that file-upload paths are relative to (default: the recording's folder)")
	fs.BoolVar(&f.continueOnError, "continue-on-error", false, "keep going after a failed action")
	fs.BoolVar(&f.servicePolicy, "service-policy", false, "apply the service's policy: web pages only (no file: URLs), file inputs relative to --files only, link-local addresses blocked")

	files, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	f.files = files
	var problems []string
	if len(f.files) == 0 {
		problems = append(problems, "no recording FILE given")
	}
	if !contains(availableBrowsers, f.browserName) {
		problems = append(problems, fmt.Sprintf("--browser %q is not available; this deployment has: %s (Firefox and WebKit cannot be driven through Rod)",
			f.browserName, strings.Join(availableBrowsers, ", ")))
	}
	// The bounds are RunOptions', the same as the API's.
	o := persistence.DefaultRunOptions()
	o.Timeout = int(f.timeout / time.Millisecond)
	o.TimingMode, o.SpeedMultiplier, o.ScreenshotMode = f.timingMode, f.speed, f.screenshotMode
	for _, p := range o.Validate() {
		switch p.Field {
		case "timeout":
			problems = append(problems, fmt.Sprintf("--timeout %s is out of range (1s to 600s)", f.timeout))
		case "timingMode":
			problems = append(problems, fmt.Sprintf("--timing-mode %q: want realistic, fast or instant", f.timingMode))
		case "speedMultiplier":
			problems = append(problems, fmt.Sprintf("--speed %g is out of range (0.1 to 10)", f.speed))
		case "screenshotMode":
			problems = append(problems, fmt.Sprintf("--screenshot-mode %q: want on-failure, always or never", f.screenshotMode))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// loaded is one recording file, parsed.
type loaded struct {
	path string
	rec  *recording.Recording
}

// runCmd implements `saveaction run`. ctx is cancelled on Ctrl-C; the run
// in progress then ends as cancelled and is reported.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitPassed
	}
	if err != nil {
		fmt.Fprintln(stderr, "saveaction run:", err)
		return exitInvalid
	}

	var recs []loaded
	invalid := false
	for _, path := range f.files {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "saveaction run: %s: %v\n", path, err)
			invalid = true
			continue
		}
		rec, err := recording.Parse(data)
		if err != nil {
			var ve *recording.ValidationError
			if errors.As(err, &ve) {
				fmt.Fprintf(stderr, "saveaction run: %s: invalid recording:\n", path)
				for _, p := range ve.Problems {
					fmt.Fprintf(stderr, "  %s\n", p)
				}
			} else {
				fmt.Fprintf(stderr, "saveaction run: %s: %v\n", path, err)
			}
			invalid = true
			continue
		}
		if bad := recording.CheckURLPolicy(rec); f.servicePolicy && len(bad) > 0 {
			fmt.Fprintf(stderr, "saveaction run: %s: refused by the service policy:\n", path)
			for _, p := range bad {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
			invalid = true
			continue
		}
		for _, w := range rec.Warnings {
			fmt.Fprintf(stderr, "warning: %s: %s\n", path, w)
		}
		recs = append(recs, loaded{path: path, rec: rec})
	}
	if invalid {
		return exitInvalid
	}

	lo := browser.LaunchOptions{Headless: !f.headed}
	if f.servicePolicy {
		// What a service run gets, less the worker's own endpoints (there
		// is no worker here).
		lo.Policy = browser.Policy{Service: true,
			Network: &netguard.Policy{BlockedNetworks: netguard.DefaultBlockedNetworks()}}
	}
	b, launchErr := browser.Launch(ctx, lo)
	if b != nil {
		defer func() { _ = b.Close() }()
	}

	var report []suiteResult
	code := exitPassed
	for i, l := range recs {
		fmt.Fprintf(stderr, "Running %s (%s, %d actions)\n", l.rec.TestName, l.path, len(l.rec.Actions))
		var res *browser.Result
		switch {
		case launchErr != nil:
			res = browser.StartFailure(l.rec, "browser did not start: "+launchErr.Error(), true)
			if ctx.Err() != nil {
				res = browser.StartFailure(l.rec, "cancelled", false)
				res.Status, res.ErrorMessage = browser.RunCancelled, ""
			}
		default:
			res = b.Replay(ctx, l.rec, f.options(l, i), &progress{w: stderr, total: len(l.rec.Actions)})
		}
		printSummary(stderr, l.rec, res)
		printStale(stderr, res)
		if f.json {
			if err := writeJSON(stdout, res); err != nil {
				fmt.Fprintln(stderr, "saveaction run: write JSON:", err)
				code = exitFailed
			}
		}
		report = append(report, suiteResult{rec: l.rec, path: l.path, res: res})
		if res.Status != browser.RunPassed {
			code = exitFailed
		}
		if ctx.Err() != nil {
			// Ctrl-C: the run in progress was reported as cancelled; the
			// files not started yet are not run.
			break
		}
	}
	if f.junit != "" {
		if err := writeJUnit(f.junit, report); err != nil {
			fmt.Fprintln(stderr, "saveaction run:", err)
			code = exitFailed
		}
	}
	return code
}

// options are the replay options of the i-th recording.
func (f *runFlags) options(l loaded, i int) browser.Options {
	runID := strings.TrimSuffix(filepath.Base(l.path), filepath.Ext(l.path))
	if l.rec.ID != "" {
		runID = l.rec.ID
	}
	files := f.filesDir
	if files == "" {
		files = filepath.Dir(l.path)
	}
	o := browser.Options{
		RunID:           fmt.Sprintf("%s-%d", safeID(runID), i+1),
		BrowserName:     f.browserName,
		Timeout:         f.timeout,
		TimingEnabled:   !f.noTiming,
		TimingMode:      f.timingMode,
		SpeedMultiplier: f.speed,
		ContinueOnError: f.continueOnError,
		Variables:       f.vars,
		VideoDir:        f.video,
		FilesDir:        files,
	}
	if f.screenshots != "" {
		o.ScreenshotMode, o.ScreenshotDir = f.screenshotMode, f.screenshots
	}
	return o
}

func safeID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// progress prints one line per finished action.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	total int
}

func (p *progress) ActionStarted(int, *recording.Action) {}

func (p *progress) ActionDone(r browser.ActionResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	mark := map[string]string{browser.StatusSuccess: "ok", browser.StatusFailed: "FAIL",
		browser.StatusTimeout: "TIMEOUT", browser.StatusSkipped: "skip"}[r.Status]
	line := fmt.Sprintf("  %-7s [%d/%d] %s %s", mark, r.Index+1, p.total, r.ActionID, r.ActionType)
	if r.SelectorUsed != "" {
		line += " (" + r.SelectorUsed + ")"
	}
	if r.Status != browser.StatusSkipped {
		line += fmt.Sprintf(" %dms", r.DurationMs)
	}
	switch {
	case r.Error != "":
		line += ": " + r.Error
	case r.Reason != "":
		line += ": " + r.Reason
	}
	for _, w := range r.Warnings {
		line += "\n          warning: " + w
	}
	fmt.Fprintln(p.w, line)
}

func printSummary(w io.Writer, rec *recording.Recording, res *browser.Result) {
	fmt.Fprintf(w, "%s: %s in %dms (%d executed, %d failed, %d skipped of %d)\n",
		strings.ToUpper(res.Status), rec.TestName, res.DurationMs, res.ActionsExecuted, res.ActionsFailed,
		res.ActionsSkipped, res.ActionsTotal)
	if res.ErrorMessage != "" {
		fmt.Fprintf(w, "  error: %s\n", res.ErrorMessage)
	}
	if res.Video != "" {
		fmt.Fprintf(w, "  video: %s\n", res.Video)
	}
	if res.VideoError != "" {
		fmt.Fprintf(w, "  %s\n", res.VideoError)
	}
}

// printStale warns, one line each, of the actions whose recorded primary
// selector no longer matches: they passed through a fallback (or failed),
// and will break when the fallback goes too.
func printStale(w io.Writer, res *browser.Result) {
	for _, n := range res.SelectorHealth.Stale {
		instead := "no other strategy matched either"
		if n.Strategy != "" {
			instead = "matched by " + n.Strategy + " instead"
		}
		fmt.Fprintf(w, "warning: stale selector: %s (action %d): primary %s no longer matches; %s\n",
			n.ActionID, n.Index+1, n.Primary, instead)
	}
}

func writeJSON(w io.Writer, res *browser.Result) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// suiteResult is one recording's outcome for the JUnit report.
type suiteResult struct {
	rec  *recording.Recording
	path string
	res  *browser.Result
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	File      string      `xml:"file,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
	SystemErr string      `xml:"system-err,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

func seconds(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// writeJUnit writes one test suite per recording and one test case per
// action.
func writeJUnit(path string, results []suiteResult) error {
	var doc junitSuites
	var total int64
	for _, sr := range results {
		s := junitSuite{Name: sr.rec.TestName, Time: seconds(sr.res.DurationMs), File: sr.path}
		if !sr.res.StartedAt.IsZero() {
			s.Timestamp = sr.res.StartedAt.UTC().Format(time.RFC3339)
		}
		for _, a := range sr.res.Actions {
			c := junitCase{Name: fmt.Sprintf("%s %s", a.ActionID, a.ActionType), Classname: sr.rec.TestName,
				Time: seconds(a.DurationMs)}
			switch a.Status {
			case browser.StatusFailed, browser.StatusTimeout:
				c.Failure = &junitFailure{Message: a.Error, Type: a.Status, Text: a.Error}
				s.Failures++
			case browser.StatusSkipped:
				c.Skipped = &junitSkipped{Message: a.Reason}
				s.Skipped++
			}
			s.Cases = append(s.Cases, c)
		}
		if len(sr.res.Actions) == 0 && sr.res.Status != browser.RunPassed {
			s.Cases = append(s.Cases, junitCase{Name: "run", Classname: sr.rec.TestName, Time: "0.000",
				Failure: &junitFailure{Message: sr.res.ErrorMessage, Type: sr.res.Status, Text: sr.res.ErrorMessage}})
			s.Failures++
		}
		if sr.res.ErrorMessage != "" && s.Failures == 0 {
			s.SystemErr = sr.res.ErrorMessage
		}
		s.Tests = len(s.Cases)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Skipped += s.Skipped
		total += sr.res.DurationMs
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = seconds(total)
	data, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JUnit report: %w", err)
	}
	data = append([]byte(xml.Header), append(data, '\n')...)
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write JUnit report: %w", err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

// parseInterleaved parses fs from args where flags may come before, between
// and after the positional arguments, which it returns in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
