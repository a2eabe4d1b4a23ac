package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/launcher"
	"github.com/go-rod/rod/lib/proto"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/examples"
)

// uiShots is where the run page's screenshots go (kept for a person to
// look at): UI_SCREENSHOTS, or the test's temporary folder.
func uiShots(t *testing.T) string {
	if d := os.Getenv("UI_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

func launchPage(t *testing.T) *rod.Page {
	t.Helper()
	bin, err := browser.FindChrome()
	if err != nil {
		t.Skip("no Chromium:", err)
	}
	l := launcher.New().Bin(bin).Headless(true).NoSandbox(true).Set("disable-gpu")
	u, err := l.Launch()
	if err != nil {
		t.Fatal(err)
	}
	b := rod.New().ControlURL(u)
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(); l.Kill(); l.Cleanup() })
	page, err := b.Page(proto.TargetCreateTarget{URL: "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	return page.Timeout(3 * time.Minute)
}

func setWidth(t *testing.T, p *rod.Page, w int) {
	t.Helper()
	if err := p.SetViewport(&proto.EmulationSetDeviceMetricsOverride{Width: w, Height: 900, DeviceScaleFactor: 1, Mobile: w < 500}); err != nil {
		t.Fatal(err)
	}
}

func shoot(t *testing.T, p *rod.Page, dir, name string) {
	t.Helper()
	b, err := p.Screenshot(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// evalInt runs a JS expression returning a number.
func evalInt(t *testing.T, p *rod.Page, js string) int {
	t.Helper()
	v, err := p.Eval("() => " + js)
	if err != nil {
		t.Fatal(err)
	}
	return v.Value.Int()
}

// The run page in real Chromium: log in once (the token stays out of the
// URL), watch a run from start to end with every action turning green as
// it happens, then a failed run shows its error on the action that failed.
func TestRunPageInChromium(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=2")
	dir := uiShots(t)
	const actions = 5
	id := f.createRun(f.slowRecording(actions), map[string]any{"timingMode": "realistic", "timeout": 5000})

	p := launchPage(t)
	setWidth(t, p, 1280)
	if err := p.Navigate(f.api.base + "/"); err != nil {
		t.Fatal(err)
	}
	p.MustElement("#token")
	setWidth(t, p, 390)
	shoot(t, p, dir, "login-390.png")
	setWidth(t, p, 1280)
	p.MustElement("#token").MustInput(f.api.token)
	p.MustElement("#login-form button").MustClick()
	p.MustElement("table.runs tbody tr")
	if err := p.Navigate(f.api.base + "/#/runs/" + id); err != nil {
		t.Fatal(err)
	}
	p.MustElement("ol.actions li")
	if strings.Contains(p.MustInfo().URL, f.api.token) {
		t.Fatal("the token is in the page's URL")
	}
	// Watch the actions turn green one by one.
	seen := map[int]bool{}
	shotRunning := false
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := evalInt(t, p, `document.querySelectorAll('ol.actions li[data-status="success"]').length`)
		seen[n] = true
		if n == 2 && !shotRunning {
			shotRunning = true
			shoot(t, p, dir, "run-running-1280.png")
		}
		if n == actions && evalInt(t, p, `document.querySelectorAll('#run-status [data-status="passed"]').length`) == 1 {
			break
		}
		if time.Now().After(deadline) {
			shoot(t, p, dir, "stuck.png")
			t.Fatalf("the page never showed the run passed (green so far: %d)", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	intermediate := 0
	for n := 1; n < actions; n++ {
		if seen[n] {
			intermediate++
		}
	}
	if intermediate < 2 {
		t.Fatalf("saw green counts %v: the actions did not turn green live, one by one", seen)
	}
	shoot(t, p, dir, "run-passed-1280.png")
	setWidth(t, p, 390)
	shoot(t, p, dir, "run-passed-390.png")

	// A failed run: the error in words, on the action that failed.
	var rec struct {
		ID string `json:"id"`
	}
	raw := strings.ReplaceAll(string(examples.FailingRecording()), "http://127.0.0.1:3002", f.site.URL)
	f.api.call("POST", "/api/v1/recordings", []byte(raw), 201, &rec)
	var run struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant", "timeout": 3000}}, 201, &run)
	setWidth(t, p, 1280)
	if err := p.Navigate(f.api.base + "/#/runs/" + run.ID); err != nil {
		t.Fatal(err)
	}
	p.MustElement(`#run-status [data-status="failed"]`)
	failed := p.MustElement(`ol.actions li[data-status="failed"]`)
	if idx := failed.MustAttribute("data-index"); idx == nil || *idx != "2" {
		t.Fatalf("failed action index %v, want 2 (act_003)", idx)
	}
	if txt := failed.MustElement(".err").MustText(); !strings.Contains(txt, "element not found") {
		t.Fatalf("failed action shows %q, want the error in words", txt)
	}
	if b := p.MustElement("#banner").MustText(); !strings.Contains(b, "Failed at action 3") {
		t.Fatalf("banner %q", b)
	}
	shoot(t, p, dir, "run-failed-1280.png")
	setWidth(t, p, 390)
	shoot(t, p, dir, "run-failed-390.png")
	if err := p.Navigate(f.api.base + "/#/"); err != nil {
		t.Fatal(err)
	}
	p.MustElement(`table.runs tbody tr[data-run="` + run.ID + `"]`)
	shoot(t, p, dir, "runs-390.png")
	setWidth(t, p, 1280)
	shoot(t, p, dir, "runs-1280.png")
}
