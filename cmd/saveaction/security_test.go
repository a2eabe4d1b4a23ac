package main

import (
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveAt serves h on a loopback address such as "127.0.0.2:0".
func serveAt(t *testing.T, addr string, h nethttp.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: ln, Config: &nethttp.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// leakRecording opens page and checks that #out shows want: it passes
// only if the page could read what it fetched.
func leakRecording(id, page, want string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"version":"1.0.0","testName":"leak %s","url":%q,"startTime":"2026-01-31T07:17:38.000Z",
		"viewport":{"width":1280,"height":720},"userAgent":"test","actions":[
		{"id":"act_001","type":"checkpoint","timestamp":1764645600000,"url":%q,"checkType":"elementText","selector":{"css":"#out"},"expectedValue":%q}]}`,
		id, id, page, page, want))
}

// fetchPage fetches target when loaded and shows the answer in #out.
func fetchPage(target string) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>t</title><div id="out">waiting</div><script>
fetch(%q).then(r => r.text()).then(t => { document.getElementById('out').textContent = t; },
  e => { document.getElementById('out').textContent = 'error ' + e; });</script>`, target)
	})
}

// TestServiceRunsAreFenced runs `saveaction dev` as a user would reach
// it, through the API: a recording that opens a host file is refused at
// upload; a recording whose page reads a secret from a blocked address, or
// talks to the worker's Redis, fails with the policy's message and is
// counted; the same recording passes on a node that does not block the
// address, so the recording would have leaked.
func TestServiceRunsAreFenced(t *testing.T) {
	needChrome(t)
	secret := serveAt(t, "127.0.0.2:0", nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = io.WriteString(w, "SECRET-FROM-BLOCKED")
	}))
	secretPage := serveAt(t, "127.0.0.1:0", fetchPage(secret.URL+"/s")).URL + "/"
	redisPage := serveAt(t, "127.0.0.1:0", fetchPage("http://127.0.0.1:6379/")).URL + "/"

	n := startDev(t, "RUN_BLOCKED_NETWORKS=169.254.0.0/16,fe80::/10,127.0.0.2/32")

	// Upload: the host's password file as the start page is refused with
	// the field's path.
	hostFile := leakRecording("rec_file", "file:///etc/passwd", "root")
	req, _ := nethttp.NewRequest("POST", n.base+"/api/v1/recordings", strings.NewReader(string(hostFile)))
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"VALIDATION_ERROR"`) || !strings.Contains(string(body), `"path":"url"`) {
		t.Fatalf("file: start page upload: %d %s, want 400 VALIDATION_ERROR at url", resp.StatusCode, body)
	}

	runOf := func(n *devNode, rec []byte) runView {
		t.Helper()
		var r struct {
			ID string `json:"id"`
		}
		n.call("POST", "/api/v1/recordings", rec, 201, &r)
		var created struct {
			ID string `json:"id"`
		}
		n.call("POST", "/api/v1/runs", map[string]any{"recordingId": r.ID,
			"options": map[string]any{"timingMode": "instant", "timeout": 15000}}, 201, &created)
		return n.waitRun(created.ID, 90*time.Second)
	}
	wantRefused := func(run runView, want string) {
		t.Helper()
		if run.Status != "failed" || run.ErrorMessage == nil || !strings.Contains(*run.ErrorMessage, want) {
			msg := "<nil>"
			if run.ErrorMessage != nil {
				msg = *run.ErrorMessage
			}
			t.Fatalf("run %s: %s, error %q; want failed with %q", run.ID, run.Status, msg, want)
		}
	}
	wantRefused(runOf(n, leakRecording("rec_secret", secretPage, "SECRET-FROM-BLOCKED")),
		"blocked by policy: "+secret.URL+"/s (RUN_BLOCKED_NETWORKS 127.0.0.2/32)")
	wantRefused(runOf(n, leakRecording("rec_redis", redisPage, "-ERR")),
		"blocked by policy: http://127.0.0.1:6379/ (the worker's own service at 127.0.0.1:6379)")

	// Both refusals are counted, by rule.
	metrics := n.get(t, "/metrics")
	for _, rule := range []string{"network", "endpoint"} {
		m := regexp.MustCompile(`saveaction_requests_blocked_total\{rule="` + rule + `"\} (\d+)`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("no %s series in /metrics", rule)
		}
		if c, _ := strconv.Atoi(m[1]); c < 1 {
			t.Errorf("saveaction_requests_blocked_total{rule=%q} = %s, want at least 1", rule, m[1])
		}
	}
	// The worker said at start what it blocks.
	if !strings.Contains(n.logs.String(), `"message":"run policy"`) {
		t.Errorf("no run policy line in the logs")
	}

	// Control: a node that leaves 127.0.0.2 open lets the same recording
	// read the secret.
	open := startDev(t, "RUN_BLOCKED_NETWORKS=169.254.0.0/16")
	if run := runOf(open, leakRecording("rec_secret", secretPage, "SECRET-FROM-BLOCKED")); run.Status != "passed" {
		t.Fatalf("control run: %+v", run)
	}
}

// get fetches a path of the node's API server as text.
func (n *devNode) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := nethttp.Get(n.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRunServicePolicyFlag: `saveaction run` opens local files, as it
// always did; with --service-policy it refuses the same recording.
func TestRunServicePolicyFlag(t *testing.T) {
	needChrome(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "page.html")
	if err := os.WriteFile(page, []byte(`<!doctype html><title>local</title><p id="out">LOCAL-FILE-TEXT</p>`), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page
	path := writeRecording(t, dir, "local", url,
		`"type":"checkpoint","checkType":"elementText","selector":{"id":"out"},"expectedValue":"LOCAL-FILE-TEXT"`)
	ctx := t.Context()
	if code, _, stderr := runIt(t, ctx, "--timing-mode", "instant", path); code != exitPassed {
		t.Fatalf("local run of a file: page: exit %d\n%s", code, stderr)
	}
	code, _, stderr := runIt(t, ctx, "--service-policy", "--timing-mode", "instant", path)
	if code != exitInvalid || !strings.Contains(stderr, "refused by the service policy") || !strings.Contains(stderr, "url: file URLs are not allowed") {
		t.Fatalf("--service-policy: exit %d, want %d with the policy's message\n%s", code, exitInvalid, stderr)
	}
}

func TestRunPolicyConfiguration(t *testing.T) {
	for k := range configDefaults {
		t.Setenv(k, configDefaults[k])
	}
	cfg, _, err := loadConfig("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.RunBlockedNetworks); got != "[169.254.0.0/16 fe80::/10]" {
		t.Errorf("default blocked networks %s", got)
	}
	if len(cfg.RunAllowedHosts) != 0 || cfg.RunMaxDownloadMB != 100 {
		t.Errorf("defaults: allowed %v, download cap %d", cfg.RunAllowedHosts, cfg.RunMaxDownloadMB)
	}
	// The worker's own services are blocked whatever the operator sets.
	eps := ownEndpoints(cfg, "127.0.0.1:40001", true)
	var got []string
	for _, e := range eps {
		got = append(got, e.what+"="+e.addr)
	}
	want := "database=127.0.0.1:5432 redis=127.0.0.1:6379 actor=127.0.0.1:40001 metrics=0.0.0.0:9464"
	if strings.Join(got, " ") != want {
		t.Errorf("own endpoints %v, want %s", got, want)
	}
	if eps := ownEndpoints(cfg, "nonhost", false); len(eps) != 2 {
		t.Errorf("without an actor address or metrics: %v", eps)
	}

	t.Setenv("RUN_BLOCKED_NETWORKS", "10.0.0.0/8, 127.0.0.1:9999")
	t.Setenv("RUN_ALLOWED_HOSTS", "example.com, *.example.org")
	cfg, _, err = loadConfig("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.RunBlockedNetworks, cfg.RunBlockedEndpoints, cfg.RunAllowedHosts) != "[10.0.0.0/8] [127.0.0.1:9999] [example.com *.example.org]" {
		t.Errorf("parsed %v %v %v", cfg.RunBlockedNetworks, cfg.RunBlockedEndpoints, cfg.RunAllowedHosts)
	}

	for key, val := range map[string]string{
		"RUN_BLOCKED_NETWORKS": "10.0.0.0/99",
		"RUN_ALLOWED_HOSTS":    "http://example.com/",
		"RUN_MAX_DOWNLOAD_MB":  "0",
	} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, val)
			if _, _, err := loadConfig("test", nil, nil); err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("%s=%q: error %v does not name the variable", key, val, err)
			}
		})
	}
}
