package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const submitUsage = `Usage: saveaction submit [flags] FILE...

Uploads each recording to a SaveAction server (reusing the recording already stored under the same
recording id), creates a run of each, and with --wait follows the runs live, one line per action, then
prints a summary. The server and token also come from SAVEACTION_SERVER and SAVEACTION_TOKEN.
Exit status: 0 all passed, 1 a run failed or was cancelled, 2 usage, auth or server errors.
Ctrl-C while waiting cancels the runs it created.

Flags:
`

// exitUsage is submit's status for usage, auth and server errors (it
// shares exitPassed and exitFailed with run).
const exitUsage = 2

// submitRequestTimeout bounds each API call but the event stream.
const submitRequestTimeout = 30 * time.Second

type submitFlags struct {
	server, token, junit, timingMode string
	wait, json                       bool
	vars                             map[string]string
	files                            []string
}

func parseSubmitFlags(args []string, stderr io.Writer) (*submitFlags, error) {
	f := &submitFlags{vars: map[string]string{}}
	fs := flag.NewFlagSet("saveaction submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, submitUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.server, "server", os.Getenv("SAVEACTION_SERVER"), "server base `URL` (default $SAVEACTION_SERVER or http://127.0.0.1:3001)")
	fs.StringVar(&f.token, "token", os.Getenv("SAVEACTION_TOKEN"), "API `token` (default $SAVEACTION_TOKEN); needs recordings:write, runs:execute and runs:read")
	fs.BoolVar(&f.wait, "wait", false, "follow the runs until they finish; the exit status then says how they went")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	fs.StringVar(&f.junit, "junit", "", "write a JUnit XML report to `FILE` (one test case per recording; implies --wait)")
	fs.Var(varFlag(f.vars), "var", "set a recording variable, `NAME=VALUE` (repeatable; given to the recordings that take it)")
	fs.StringVar(&f.timingMode, "timing-mode", "", "replay timing: realistic, fast, fixed or instant (server default when unset)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	f.files = files
	if f.server == "" {
		f.server = "http://127.0.0.1:3001"
	}
	f.server = strings.TrimRight(f.server, "/")
	if f.junit != "" {
		f.wait = true
	}
	switch {
	case len(f.files) == 0:
		return nil, errors.New("no recording files given")
	case f.token == "":
		return nil, errors.New("no token: pass --token or set SAVEACTION_TOKEN")
	case f.timingMode != "" && !slices.Contains([]string{"realistic", "fast", "fixed", "instant"}, f.timingMode):
		return nil, fmt.Errorf("--timing-mode %q: want realistic, fast, fixed or instant", f.timingMode)
	}
	return f, nil
}

// apiClient calls the REST API with the token in the Authorization header.
type apiClient struct {
	base, token string
	hc          *nethttp.Client
}

// apiErr is an error answer of the API (or no answer at all: Status 0).
type apiErr struct {
	Status  int
	Code    string
	Message string
	Details json.RawMessage
}

func (e *apiErr) Error() string {
	if e.Status == 0 {
		return e.Message
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (c *apiClient) request(ctx context.Context, method, path string, body []byte) (*nethttp.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// call sends body (raw JSON, or nil) and decodes the envelope's data into out.
func (c *apiClient) call(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, submitRequestTimeout)
	defer cancel()
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &apiErr{Message: fmt.Sprintf("%s %s: %v", method, path, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &apiErr{Message: fmt.Sprintf("%s %s: %v", method, path, err)}
	}
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return &apiErr{Status: resp.StatusCode, Code: "BAD_RESPONSE", Message: fmt.Sprintf("%s %s: not a SaveAction API answer", method, path)}
	}
	if resp.StatusCode >= 300 || !env.Success {
		e := &apiErr{Status: resp.StatusCode}
		if env.Error != nil {
			e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// sseEvent is one event of a text/event-stream.
type sseEvent struct {
	ID, Name string
	Data     []byte
}

// readSSE calls fn with each event of r until fn returns false or r ends.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var ev sseEvent
	var data [][]byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if ev.Name != "" || len(data) > 0 {
				ev.Data = bytes.Join(data, []byte("\n"))
				if !fn(ev) {
					return nil
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			ev.ID = string(value)
		case "event":
			ev.Name = string(value)
		case "data":
			data = append(data, value)
		}
	}
}

// submitted is one recording file and its run.
type submitted struct {
	file          string
	recordingID   string
	recordingName string
	runID         string
	started       time.Time
	final         runResult
	actions       []actionResult
	finished      bool
}

type runResult struct {
	ID              string  `json:"id"`
	RecordingName   string  `json:"recordingName"`
	Status          string  `json:"status"`
	ActionsTotal    int     `json:"actionsTotal"`
	ActionsExecuted int     `json:"actionsExecuted"`
	ActionsFailed   int     `json:"actionsFailed"`
	ActionsSkipped  int     `json:"actionsSkipped"`
	DurationMs      *int64  `json:"durationMs"`
	ErrorMessage    *string `json:"errorMessage"`
	ErrorActionID   *string `json:"errorActionId"`
}

type actionResult struct {
	ActionID     string  `json:"actionId"`
	ActionType   string  `json:"actionType"`
	ActionIndex  int     `json:"actionIndex"`
	Status       string  `json:"status"`
	DurationMs   *int64  `json:"durationMs"`
	SelectorUsed *string `json:"selectorUsed"`
	ErrorMessage *string `json:"errorMessage"`
}

// submitCmd is `saveaction submit`.
func submitCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseSubmitFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitPassed
	}
	if err != nil {
		fmt.Fprintln(stderr, "saveaction submit:", err)
		return exitUsage
	}
	c := &apiClient{base: f.server, token: f.token, hc: &nethttp.Client{}}
	progress := stdout
	if f.json {
		progress = stderr
	}
	out := &lineWriter{w: progress, fancy: isTerminal(progress)}

	var subs []*submitted
	fail := func(err error) int {
		fmt.Fprintln(stderr, "saveaction submit:", err)
		// Runs already created are left to finish; they are listed for the user.
		for _, s := range subs {
			fmt.Fprintf(stderr, "  created run %s (%s)\n", s.runID, s.file)
		}
		return exitUsage
	}
	for _, file := range f.files {
		s, err := submitOne(ctx, c, f, file)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", file, err))
		}
		subs = append(subs, s)
		out.printf("queued   %s  run %s\n", s.recordingName, s.runID)
	}
	if !f.wait {
		if f.json {
			var ids []map[string]string
			for _, s := range subs {
				ids = append(ids, map[string]string{"file": s.file, "recordingId": s.recordingID, "runId": s.runID})
			}
			_ = json.NewEncoder(stdout).Encode(ids)
		}
		return exitPassed
	}

	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = follow(ctx, c, s, out, len(subs) > 1)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Ctrl-C: cancel what we started and is not over.
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		for _, s := range subs {
			if s.finished {
				continue
			}
			if err := c.call(cctx, "POST", "/api/v1/runs/"+s.runID+"/cancel", nil, nil); err != nil {
				fmt.Fprintf(stderr, "cancel run %s: %v\n", s.runID, err)
			} else {
				fmt.Fprintf(stderr, "cancelled run %s (%s)\n", s.runID, s.recordingName)
			}
		}
		cancel()
		return exitFailed
	}
	for i, err := range errs {
		if err != nil {
			return fail(fmt.Errorf("%s: %w", subs[i].file, err))
		}
	}
	code := exitPassed
	for _, s := range subs {
		if err := c.call(ctx, "GET", "/api/v1/runs/"+s.runID, nil, &s.final); err != nil {
			return fail(err)
		}
		if err := c.call(ctx, "GET", "/api/v1/runs/"+s.runID+"/actions", nil, &s.actions); err != nil {
			return fail(err)
		}
		if s.final.Status != "passed" {
			code = exitFailed
		}
	}
	printSubmitSummary(progress, subs)
	if f.json {
		type result struct {
			File    string         `json:"file"`
			Run     runResult      `json:"run"`
			Actions []actionResult `json:"actions"`
		}
		var res []result
		for _, s := range subs {
			res = append(res, result{s.file, s.final, s.actions})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if f.junit != "" {
		if err := writeSubmitJUnit(f.junit, subs); err != nil {
			return fail(err)
		}
	}
	return code
}

// submitOne uploads file (or brings the stored recording of the same id up
// to date) and creates its run.
func submitOne(ctx context.Context, c *apiClient, f *submitFlags, file string) (*submitted, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rec struct {
		ID        string   `json:"id"`
		Name      string   `json:"name"`
		Variables []string `json:"variables"`
	}
	err = c.call(ctx, "POST", "/api/v1/recordings", raw, &rec)
	var ae *apiErr
	if errors.As(err, &ae) && ae.Code == "DUPLICATE_ORIGINAL_ID" {
		var d struct {
			RecordingID string `json:"recordingId"`
		}
		if json.Unmarshal(ae.Details, &d) != nil || d.RecordingID == "" {
			return nil, fmt.Errorf("the server reports a duplicate but names no recording: %w", err)
		}
		// Same recording id: store this file's content as its new version,
		// so the run replays what is in the file.
		err = c.call(ctx, "PUT", "/api/v1/recordings/"+d.RecordingID, updateBody(raw), &rec)
	}
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for k, v := range f.vars {
		if slices.Contains(rec.Variables, k) {
			vars[k] = v
		}
	}
	body := map[string]any{"recordingId": rec.ID, "triggeredBy": "ci", "variables": vars}
	if f.timingMode != "" {
		body["options"] = map[string]any{"timingMode": f.timingMode}
	}
	b, _ := json.Marshal(body)
	var run struct {
		ID string `json:"id"`
	}
	if err := c.call(ctx, "POST", "/api/v1/runs", b, &run); err != nil {
		return nil, err
	}
	return &submitted{file: file, recordingID: rec.ID, recordingName: rec.Name, runID: run.ID, started: time.Now()}, nil
}

// updateBody is the PUT body for a file: a wrapper ({name, data, ...}) as
// it is, a bare recording as its data.
func updateBody(raw []byte) []byte {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) == nil {
		if _, ok := probe["data"]; ok {
			if _, bare := probe["actions"]; !bare {
				return raw
			}
		}
	}
	b, _ := json.Marshal(map[string]json.RawMessage{"data": raw})
	return b
}

// follow reads s's events until run.finished, reconnecting with
// Last-Event-ID when the stream breaks (an API node restarting).
func follow(ctx context.Context, c *apiClient, s *submitted, out *lineWriter, named bool) error {
	last := ""
	failures := 0
	prefix := ""
	if named {
		prefix = "[" + s.recordingName + "] "
	}
	for ctx.Err() == nil {
		err := stream(ctx, c, s.runID, last, func(ev sseEvent) bool {
			last = ev.ID
			failures = 0
			out.event(prefix, ev)
			if ev.Name == "run.finished" {
				s.finished = true
				return false
			}
			return true
		})
		if s.finished {
			return nil
		}
		var ae *apiErr
		if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
			return err
		}
		failures++
		if failures > 30 {
			return fmt.Errorf("event stream of run %s keeps failing: %w", s.runID, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(min(failures, 5)) * 500 * time.Millisecond):
		}
	}
	return ctx.Err()
}

// stream opens run id's event stream after last and hands each event to fn.
func stream(ctx context.Context, c *apiClient, id, last string, fn func(sseEvent) bool) error {
	req, err := c.request(ctx, "GET", "/api/v1/runs/"+id+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &apiErr{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &env) == nil && env.Error.Code != "" {
			e.Code, e.Message = env.Error.Code, env.Error.Message
		}
		return e
	}
	return readSSE(resp.Body, fn)
}

// lineWriter prints progress lines, whole, from any goroutine.
type lineWriter struct {
	mu    sync.Mutex
	w     io.Writer
	fancy bool // a terminal: symbols instead of words
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// event prints the line of one event; action.started prints nothing (its
// action.finished says it all, one line per action).
func (l *lineWriter) event(prefix string, ev sseEvent) {
	var d struct {
		Attempt      int    `json:"attempt"`
		Worker       string `json:"worker"`
		Index        int    `json:"index"`
		ID           string `json:"id"`
		Type         string `json:"type"`
		Status       string `json:"status"`
		DurationMs   int64  `json:"durationMs"`
		SelectorUsed string `json:"selectorUsed"`
		Error        string `json:"error"`
		NextAttempt  int    `json:"nextAttempt"`
		Reason       string `json:"reason"`
		ActionsTotal int    `json:"actionsTotal"`
		ActionsExec  int    `json:"actionsExecuted"`
		ActionsFail  int    `json:"actionsFailed"`
	}
	_ = json.Unmarshal(ev.Data, &d)
	switch ev.Name {
	case "run.started":
		l.printf("%sstarted  attempt %d on %s\n", prefix, d.Attempt, d.Worker)
	case "action.finished":
		mark := map[string]string{"success": "ok  ", "failed": "FAIL", "timeout": "TIME", "skipped": "skip"}[d.Status]
		if l.fancy {
			mark = map[string]string{"success": "✓", "failed": "✗", "timeout": "⏱", "skipped": "–"}[d.Status]
		}
		if mark == "" {
			mark = d.Status
		}
		line := fmt.Sprintf("%s%s %3d %-10s %-12s %6d ms", prefix, mark, d.Index+1, d.Type, d.ID, d.DurationMs)
		if d.SelectorUsed != "" {
			line += "  " + d.SelectorUsed
		}
		if d.Error != "" {
			line += "\n" + prefix + "      error: " + d.Error
		}
		l.printf("%s\n", line)
	case "run.retrying":
		l.printf("%sretrying as attempt %d: %s\n", prefix, d.NextAttempt, d.Reason)
	case "run.finished":
		line := fmt.Sprintf("%sfinished %s", prefix, d.Status)
		if d.Error != "" {
			line += ": " + d.Error
		}
		l.printf("%s\n", line)
	}
}

func printSubmitSummary(w io.Writer, subs []*submitted) {
	fmt.Fprintln(w)
	passed := 0
	for _, s := range subs {
		r := s.final
		dur := ""
		if r.DurationMs != nil {
			dur = fmt.Sprintf(", %.1f s", float64(*r.DurationMs)/1000)
		}
		fmt.Fprintf(w, "%-9s %s (%d/%d actions%s)  run %s\n", strings.ToUpper(r.Status), s.recordingName,
			r.ActionsExecuted-r.ActionsFailed, r.ActionsTotal, dur, r.ID)
		if r.ErrorMessage != nil && *r.ErrorMessage != "" {
			at := ""
			if r.ErrorActionID != nil {
				at = " at " + *r.ErrorActionID
			}
			fmt.Fprintf(w, "          error%s: %s\n", at, *r.ErrorMessage)
		}
		if r.Status == "passed" {
			passed++
		}
	}
	fmt.Fprintf(w, "%d of %d passed\n", passed, len(subs))
}

// writeSubmitJUnit writes one test case per recording.
func writeSubmitJUnit(path string, subs []*submitted) error {
	suite := junitSuite{Name: "saveaction submit"}
	var total int64
	for _, s := range subs {
		r := s.final
		ms := int64(0)
		if r.DurationMs != nil {
			ms = *r.DurationMs
		}
		total += ms
		c := junitCase{Name: s.recordingName, Classname: filepath.Base(s.file), Time: seconds(ms)}
		if r.Status != "passed" {
			msg := r.Status
			if r.ErrorMessage != nil {
				msg = *r.ErrorMessage
			}
			var text strings.Builder
			fmt.Fprintf(&text, "run %s %s\n", r.ID, r.Status)
			for _, a := range s.actions {
				if a.ErrorMessage != nil {
					fmt.Fprintf(&text, "action %d %s (%s) %s: %s\n", a.ActionIndex+1, a.ActionID, a.ActionType, a.Status, *a.ErrorMessage)
				}
			}
			c.Failure = &junitFailure{Message: msg, Type: r.Status, Text: text.String()}
			suite.Failures++
		}
		suite.Tests++
		suite.Cases = append(suite.Cases, c)
	}
	suite.Time = seconds(total)
	doc := junitSuites{Tests: suite.Tests, Failures: suite.Failures, Time: suite.Time, Suites: []junitSuite{suite}}
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JUnit report: %w", err)
	}
	if err := os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}
