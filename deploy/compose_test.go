package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ourImage is what compose.yaml calls the image of deploy/Dockerfile.
const ourImage = "saveaction-runner:local"

// composeService is the part of a compose service these tests read.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     any               `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Hostname    string            `yaml:"hostname"`
	StopGrace   string            `yaml:"stop_grace_period"`
	ShmSize     string            `yaml:"shm_size"`
	SecurityOpt []string          `yaml:"security_opt"`
	Volumes     []string          `yaml:"volumes"`
	Restart     string            `yaml:"restart"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Deploy struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func (s composeService) replicas() int {
	if s.Deploy.Replicas == nil {
		return 1
	}
	return *s.Deploy.Replicas
}

// ours reports whether the service runs the saveaction image.
func (s composeService) ours() bool { return s.Image == ourImage }

// oneShot reports whether the service runs to completion (migrations).
func (s composeService) oneShot() bool {
	c, _ := s.Command.([]any)
	return len(c) > 0 && c[0] == "migrate"
}

func loadCompose(t *testing.T, path string) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Services) == 0 {
		t.Fatalf("%s: no services", path)
	}
	return f.Services
}

// interpolation is compose's ${VAR:-default}; the tests read the default.
var interpolation = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`)

// hostPorts is the host ports a "HOST:CONTAINER" mapping publishes, and
// how many containers it can serve.
func hostPorts(t *testing.T, mapping string) []int {
	t.Helper()
	m := interpolation.ReplaceAllString(mapping, "$1")
	parts := strings.Split(m, ":")
	if len(parts) < 2 {
		t.Fatalf("port %q: publish a fixed host port (HOST:CONTAINER)", mapping)
	}
	host := parts[len(parts)-2]
	lo, hi, isRange := strings.Cut(host, "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		t.Fatalf("port %q: host port %q", mapping, host)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil || b < a {
			t.Fatalf("port %q: host range %q", mapping, host)
		}
	}
	var out []int
	for p := a; p <= b; p++ {
		out = append(out, p)
	}
	return out
}

func TestComposeFile(t *testing.T) {
	services := loadCompose(t, "../compose.yaml")
	names := configNames(t)
	want := func(cond bool, format string, args ...any) {
		t.Helper()
		if !cond {
			t.Errorf(format, args...)
		}
	}

	// The fleet the issue asks for.
	count := map[string]int{}
	for name, s := range services {
		switch {
		case s.ours() && s.oneShot():
			count["migrate"]++
		case s.ours():
			c, _ := s.Command.([]any)
			want(len(c) == 1, "%s: command %v: want [api] or [worker]", name, s.Command)
			if len(c) == 1 {
				count[fmt.Sprint(c[0])] += s.replicas()
			}
		default:
			repo, _, _ := strings.Cut(s.Image, ":")
			count[repo[strings.LastIndex(repo, "/")+1:]]++
		}
	}
	for what, n := range map[string]int{"postgres": 1, "redis": 1, "migrate": 1, "api": 2, "worker": 3, "prometheus": 1, "grafana": 1, "etcd": 1} {
		want(count[what] == n, "compose.yaml runs %d %s, want %d (all: %v)", count[what], what, n, count)
	}

	published := map[int]string{}
	workerNames := map[string]string{}
	hostnames := map[string]string{}
	for name, s := range services {
		want(s.Image != "" || s.Build != nil, "%s: neither image nor build", name)
		if s.ours() {
			want(s.Build != nil, "%s: the saveaction image without its build (deploy/Dockerfile)", name)
			for k := range s.Environment {
				want(names[k], "%s: environment %s is not a variable saveaction reads (saveaction config names)", name, k)
			}
			grace := 30 * time.Second
			if v, ok := s.Environment["SHUTDOWN_GRACE_SECONDS"]; ok {
				n, err := strconv.Atoi(v)
				want(err == nil, "%s: SHUTDOWN_GRACE_SECONDS=%q", name, v)
				grace = time.Duration(n) * time.Second
			}
			stop, err := time.ParseDuration(s.StopGrace)
			want(err == nil && stop > grace, "%s: stop_grace_period %q must exceed SHUTDOWN_GRACE_SECONDS (%s): a drain cut short by SIGKILL loses its hand-backs", name, s.StopGrace, grace)
			want(slices.Contains(s.Volumes, "data:/data"), "%s: the shared artifact volume data:/data is not mounted", name)
			if wn, ok := s.Environment["WORKER_NAME"]; ok {
				want(s.replicas() == 1, "%s: WORKER_NAME set on %d replicas: they would share it", name, s.replicas())
				want(workerNames[wn] == "", "%s and %s: the same WORKER_NAME %q", name, workerNames[wn], wn)
				workerNames[wn] = name
			}
		}
		if s.Hostname != "" {
			want(s.replicas() == 1, "%s: hostname on %d replicas: their default worker names would start alike", name, s.replicas())
			want(hostnames[s.Hostname] == "", "%s and %s: the same hostname %q", name, hostnames[s.Hostname], s.Hostname)
			hostnames[s.Hostname] = name
		}
		if c, _ := s.Command.([]any); s.ours() && len(c) == 1 && c[0] == "worker" {
			want(s.ShmSize != "", "%s: no shm_size: Chromium crashes on Docker's 64 MB /dev/shm", name)
			for _, o := range s.SecurityOpt {
				if f, ok := strings.CutPrefix(o, "seccomp="); ok {
					raw, err := os.ReadFile(filepath.Join("..", f))
					var prof map[string]any
					want(err == nil && json.Unmarshal(raw, &prof) == nil, "%s: seccomp profile %s: %v", name, f, err)
				}
			}
		}
		// Healthchecks: every long-running service has one (ours from the
		// image's HEALTHCHECK), and a service_healthy dependency has one.
		if !s.oneShot() {
			want(s.ours() || s.Healthcheck != nil && len(s.Healthcheck.Test) > 0, "%s: no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			ds, ok := services[dep]
			want(ok, "%s depends on %s, which is not a service", name, dep)
			switch d.Condition {
			case "service_healthy":
				want(ds.ours() && !ds.oneShot() || ds.Healthcheck != nil, "%s waits for %s to be healthy; it has no healthcheck", name, dep)
			case "service_completed_successfully":
				want(ds.oneShot(), "%s waits for %s to complete; it does not", name, dep)
			case "service_started":
			default:
				want(false, "%s: depends_on %s without a condition", name, dep)
			}
		}
		for _, p := range s.Ports {
			ports := hostPorts(t, p)
			want(len(ports) >= s.replicas(), "%s: %d replicas on %d host ports (%s)", name, s.replicas(), len(ports), p)
			for _, hp := range ports {
				want(published[hp] == "", "%s and %s both publish host port %d", name, published[hp], hp)
				published[hp] = name
			}
		}
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, ".") {
				_, err := os.Stat(filepath.Join("..", src))
				want(err == nil, "%s: mounts %s, which does not exist", name, src)
			}
		}
	}
}

// TestComposeTestOverride: the override make deploy-test lays over
// compose.yaml only names services and variables that exist.
func TestComposeTestOverride(t *testing.T) {
	base := loadCompose(t, "../compose.yaml")
	over := loadCompose(t, "docker/compose.test.yaml")
	names := configNames(t)
	for name, s := range over {
		b, ok := base[name]
		if !ok {
			if s.Image == "" && s.Build == nil {
				t.Errorf("%s: a new service without image or build", name)
			}
			continue
		}
		for k := range s.Environment {
			if b.ours() && !names[k] {
				t.Errorf("%s: environment %s is not a variable saveaction reads", name, k)
			}
		}
	}
}

// TestDockerfile: multi-stage, a pinned Debian release, no Go toolchain in
// the final image, not root, a HEALTHCHECK, tini as PID 1, and only
// variables the binary reads.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	names := configNames(t)
	args := map[string]string{}
	var stages [][]string // instructions per stage, continuation lines joined
	var line string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			line += c + " "
			continue
		}
		line += l
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		switch strings.ToUpper(f[0]) {
		case "ARG":
			if len(stages) == 0 {
				k, v, _ := strings.Cut(f[1], "=")
				args[k] = v
			}
		case "FROM":
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], line)
		}
		line = ""
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(stages))
	}
	final := stages[len(stages)-1]
	from := strings.Fields(final[0])[1]
	if k, ok := strings.CutPrefix(from, "$"); ok {
		from = args[strings.Trim(k, "{}")]
	}
	if !strings.HasPrefix(from, "debian:bookworm") {
		t.Errorf("final stage FROM %q: want a pinned Debian release (debian:bookworm-slim)", from)
	}
	has := func(prefix string) string {
		for _, l := range final {
			if strings.HasPrefix(strings.ToUpper(l), prefix) {
				return l
			}
		}
		return ""
	}
	if u := has("USER "); u == "" || strings.Fields(u)[1] == "root" || strings.Fields(u)[1] == "0" {
		t.Errorf("final stage USER %q: want a non-root user", u)
	}
	if has("HEALTHCHECK ") == "" {
		t.Error("no HEALTHCHECK in the final stage")
	}
	if e := has("ENTRYPOINT "); !strings.Contains(e, "tini") {
		t.Errorf("ENTRYPOINT %q: want tini as PID 1 (signals, reaping Chromium)", e)
	}
	for _, l := range final {
		up := strings.ToUpper(l)
		if strings.HasPrefix(up, "COPY ") && !strings.Contains(l, "--from=") || strings.Contains(l, "golang") {
			t.Errorf("final stage: %q: only the binary comes from the build stage", l)
		}
		if strings.HasPrefix(up, "ENV ") {
			for _, kv := range strings.Fields(l)[1:] {
				k, _, _ := strings.Cut(kv, "=")
				if !names[k] {
					t.Errorf("ENV %s is not a variable saveaction reads", k)
				}
			}
		}
	}
}
