package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/browser"
)

const runTestPage = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Run page</title></head><body>
<input id="name" name="name"><button id="go" type="button">Go</button><p id="out"></p>
<script>document.getElementById('go').addEventListener('click', () => {
  document.getElementById('out').textContent = 'Hi ' + document.getElementById('name').value; });</script>
</body></html>`

// runTestServer serves the page the recordings of these tests open.
func runTestServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, runTestPage)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// writeRecording writes a recording of the given actions (JSON objects
// without ids; they are numbered) and returns its path.
func writeRecording(t *testing.T, dir, name, url string, actions ...string) string {
	t.Helper()
	var list []string
	for i, a := range actions {
		list = append(list, fmt.Sprintf(`{"id":"act_%03d","timestamp":%d,"url":%q,%s}`, i+1, 1764645600000+i*100, url, a))
	}
	rec := fmt.Sprintf(`{"id":"rec_1","version":"1.0.0","testName":%q,"url":%q,"startTime":"2026-01-31T07:17:38.000Z",
		"viewport":{"width":1280,"height":720},"userAgent":"test","actions":[%s]}`, name, url, strings.Join(list, ","))
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func needChrome(t *testing.T) {
	t.Helper()
	if _, err := browser.FindChrome(); err != nil {
		t.Skip(err)
	}
}

func runIt(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runCmd(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const (
	typeName  = `"type":"input","selector":{"id":"name"},"value":"${WHO}"`
	clickGo   = `"type":"click","selector":{"id":"go"}`
	checkOut  = `"type":"checkpoint","checkType":"elementText","selector":{"id":"out"},"expectedValue":"Hi Ada"`
	clickGone = `"type":"click","selector":{"id":"gone","css":"#gone"}`
)

func TestRunPassesWithJSONAndVariables(t *testing.T) {
	needChrome(t)
	url := runTestServer(t)
	dir := t.TempDir()
	path := writeRecording(t, dir, "greet", url, typeName, clickGo, checkOut)
	// Flags may come after the file.
	code, out, errOut := runIt(t, context.Background(), "--json", path, "--var", "WHO=Ada", "--no-timing")
	if code != exitPassed {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if res["status"] != "passed" || res["actionsExecuted"] != 3.0 || res["video"] != nil {
		t.Errorf("result %s", out)
	}
	if a := res["assertions"].(map[string]any); a["passed"] != 1.0 {
		t.Errorf("assertions %v", a)
	}
	actions := res["actions"].([]any)
	first := actions[0].(map[string]any)
	if first["actionId"] != "act_001" || first["index"] != 0.0 || first["selectorUsed"] != "id" || first["error"] != nil {
		t.Errorf("first action %v", first)
	}
	// One progress line per action on stderr, plain text.
	for _, want := range []string{"[1/3] act_001 input (id)", "[2/3] act_002 click (id)", "[3/3] act_003 checkpoint", "PASSED: greet"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "\x1b[") {
		t.Errorf("ANSI codes in output")
	}
}

// A recording whose primary selector went stale still passes through its
// fallback; --json carries the health report and stderr warns once per
// stale selector.
func TestRunWarnsOfStaleSelectors(t *testing.T) {
	needChrome(t)
	url := runTestServer(t)
	dir := t.TempDir()
	staleClick := `"type":"click","selector":{"id":"go-old","css":"#go","priority":["id","css"]}`
	staleInput := `"type":"input","selector":{"id":"name-old","name":"name","priority":["id","name"]},"value":"Ada"`
	path := writeRecording(t, dir, "stale", url, staleInput, staleClick, checkOut)
	code, out, errOut := runIt(t, context.Background(), "--json", path, "--no-timing")
	if code != exitPassed {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var res struct {
		SelectorHealth struct {
			Located, Primary, Fallback int
			Stale                      []struct{ ActionID, Primary, Strategy string }
		} `json:"selectorHealth"`
		Actions []struct {
			SelectorHealth *struct {
				Strategy string
				Position int
				Failed   []string
				Stale    bool
			} `json:"selectorHealth"`
		} `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout: %v\n%s", err, out)
	}
	h := res.SelectorHealth
	if h.Located != 3 || h.Primary != 1 || h.Fallback != 2 || len(h.Stale) != 2 || h.Stale[1].ActionID != "act_002" ||
		h.Stale[1].Primary != "id" || h.Stale[1].Strategy != "css" {
		t.Errorf("selectorHealth %+v", h)
	}
	if a := res.Actions[0].SelectorHealth; a == nil || a.Strategy != "name" || a.Position != 1 || !a.Stale ||
		len(a.Failed) != 1 || a.Failed[0] != "id (no match)" {
		t.Errorf("first action health %+v", a)
	}
	lines := 0
	for _, l := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(l, "warning: stale selector: ") {
			lines++
		}
	}
	if lines != 2 || !strings.Contains(errOut, "warning: stale selector: act_002 (action 2): primary id no longer matches; matched by css instead") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestRunFailsWithJUnitAndScreenshots(t *testing.T) {
	needChrome(t)
	url := runTestServer(t)
	dir := t.TempDir()
	path := writeRecording(t, dir, "broken", url, clickGo, clickGone, clickGo)
	junit := filepath.Join(dir, "reports", "junit.xml")
	shots := filepath.Join(dir, "shots")
	code, out, errOut := runIt(t, context.Background(), "--junit", junit, "--timeout", "1s", "--timing-mode", "instant",
		"--screenshots", shots, path)
	if code != exitFailed {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if out != "" {
		t.Errorf("stdout without --json: %q", out)
	}
	if !strings.Contains(errOut, "FAIL    [2/3] act_002 click") || !strings.Contains(errOut, "element not found") ||
		!strings.Contains(errOut, "skip    [3/3] act_003 click: previous action failed") {
		t.Errorf("stderr:\n%s", errOut)
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit: %v\n%s", err, data)
	}
	if doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 || len(doc.Suites) != 1 || doc.Suites[0].Name != "broken" {
		t.Errorf("junit %+v", doc)
	}
	if f := doc.Suites[0].Cases[1].Failure; f == nil || !strings.Contains(f.Message, "element not found") {
		t.Errorf("failure %+v", f)
	}
	entries, _ := os.ReadDir(shots)
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), "-chromium-002-act_002.png") {
		t.Errorf("screenshots %v", entries)
	}
}

func TestRunInvalidInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"id":"","actions":[{"id":"act_001"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeRecording(t, dir, "ok", "http://127.0.0.1:1/", clickGo)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"invalid recording lists problems", []string{bad}, []string{"invalid recording", "testName", "actions[0].type"}},
		{"missing file", []string{filepath.Join(dir, "nope.json")}, []string{"nope.json"}},
		{"no file", nil, []string{"no recording FILE"}},
		{"firefox", []string{"--browser", "firefox", good}, []string{`"firefox" is not available`, "chromium"}},
		{"webkit", []string{"--browser=webkit", good}, []string{`"webkit" is not available`}},
		{"timeout range", []string{"--timeout", "10", good}, []string{"--timeout 10ms is out of range"}},
		{"speed range", []string{"--speed", "20", good}, []string{"--speed 20 is out of range"}},
		{"timing mode", []string{"--timing-mode", "slow", good}, []string{`--timing-mode "slow"`}},
		{"screenshot mode", []string{"--screenshot-mode", "sometimes", good}, []string{`--screenshot-mode "sometimes"`}},
		{"bad var", []string{"--var", "novalue", good}, []string{"NAME=VALUE"}},
		{"unknown flag", []string{"--frobnicate", good}, []string{"frobnicate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runIt(t, context.Background(), c.args...)
			if code != exitInvalid {
				t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// cancellingWriter cancels when a line containing trigger is written.
type cancellingWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	cancel  context.CancelFunc
}

func (w *cancellingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.trigger) {
		w.cancel()
	}
	return len(p), nil
}

func TestRunCtrlCCancels(t *testing.T) {
	needChrome(t)
	url := runTestServer(t)
	dir := t.TempDir()
	// The second action waits 60 s by the recording's timing; Ctrl-C comes
	// when the first is done.
	path := writeRecording(t, dir, "long", url, clickGo, clickGo)
	rec, _ := os.ReadFile(path)
	rec = bytes.Replace(rec, []byte(`"timestamp":1764645600100`), []byte(`"timestamp":1764645660000`), 1)
	if err := os.WriteFile(path, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancellingWriter{trigger: "[1/2] act_001", cancel: cancel}
	var stdout bytes.Buffer
	start := time.Now()
	code := runCmd(ctx, []string{"--json", path}, &stdout, stderr)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
	if code != exitFailed {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.buf.String())
	}
	var res browser.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != browser.RunCancelled || res.Actions[1].Reason != browser.ReasonCancelled {
		t.Errorf("result %s", stdout.String())
	}
	if !strings.Contains(stderr.buf.String(), "CANCELLED: long") {
		t.Errorf("stderr:\n%s", stderr.buf.String())
	}
}
