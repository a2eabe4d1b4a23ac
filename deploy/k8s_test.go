package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/saveaction/runner/queue"
)

// There is no Kubernetes cluster where these tests run: they check the
// manifests' structure and their agreement with the binary, not a deploy.

const k8sDir = "k8s"

// kustomization is the part of a Kustomization (or Component) we use;
// strict decoding rejects any other field.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Components []string `json:"components"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// scaledObject is KEDA's ScaledObject (keda.sh/v1alpha1), the fields we set.
type scaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// knownKinds makes the typed object of each apiVersion/kind we ship.
var knownKinds = map[string]func() any{
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                                  func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/Role":             func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":      func() any { return &rbacv1.RoleBinding{} },
	"autoscaling/v2/HorizontalPodAutoscaler":        func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"keda.sh/v1alpha1/ScaledObject":                 func() any { return &scaledObject{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
	"kustomize.config.k8s.io/v1alpha1/Component":    func() any { return &kustomization{} },
}

// manifests is every object of deploy/k8s, by kind.
type manifests struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    []*corev1.Service
	accounts    map[string]bool
	deployments map[string]*appsv1.Deployment
	jobs        []*batchv1.Job
	pdbs        []*policyv1.PodDisruptionBudget
	roles       map[string]*rbacv1.Role
	bindings    []*rbacv1.RoleBinding
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	scaled      []*scaledObject
	kustomize   map[string]*kustomization // by directory
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// loadManifests parses every YAML file under deploy/k8s strictly into its
// Kubernetes type: an unknown field, kind or apiVersion is an error.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		accounts: map[string]bool{}, deployments: map[string]*appsv1.Deployment{}, roles: map[string]*rbacv1.Role{},
		kustomize: map[string]*kustomization{}}
	err := filepath.WalkDir(k8sDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			if d.Name() != "README.md" {
				t.Errorf("%s: not a manifest (only .yaml files and README.md belong here)", path)
			}
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range docSeparator.Split(string(raw), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s document %d: %v", path, i+1, err)
				continue
			}
			mk, ok := knownKinds[tm.APIVersion+"/"+tm.Kind]
			if !ok {
				t.Errorf("%s document %d: unknown apiVersion/kind %s/%s", path, i+1, tm.APIVersion, tm.Kind)
				continue
			}
			obj := mk()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d (%s): %v", path, i+1, tm.Kind, err)
				continue
			}
			if k, ok := obj.(*kustomization); ok && d.Name() != "kustomization.yaml" {
				t.Errorf("%s: a %s must be named kustomization.yaml", path, k.Kind)
			}
			m.add(obj, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (m *manifests) add(obj any, dir string) {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		m.configMaps[o.Name] = o
	case *corev1.Secret:
		m.secrets[o.Name] = o
	case *corev1.Service:
		m.services = append(m.services, o)
	case *corev1.ServiceAccount:
		m.accounts[o.Name] = true
	case *appsv1.Deployment:
		m.deployments[o.Name] = o
	case *batchv1.Job:
		m.jobs = append(m.jobs, o)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, o)
	case *rbacv1.Role:
		m.roles[o.Name] = o
	case *rbacv1.RoleBinding:
		m.bindings = append(m.bindings, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.hpas = append(m.hpas, o)
	case *scaledObject:
		m.scaled = append(m.scaled, o)
	case *kustomization:
		m.kustomize[dir] = o
	}
}

// podSpecs are the pod templates of the Deployments and Jobs, by name.
func (m *manifests) podSpecs() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range m.deployments {
		out["deployment/"+n] = &d.Spec.Template
	}
	for _, j := range m.jobs {
		out["job/"+j.Name] = &j.Spec.Template
	}
	return out
}

// TestKustomizationListsEveryManifest: every file is listed by the
// kustomization of its folder, every listed file or component exists, and
// the base picks exactly one autoscaler.
func TestKustomizationListsEveryManifest(t *testing.T) {
	m := loadManifests(t)
	base, ok := m.kustomize[k8sDir]
	if !ok || base.Kind != "Kustomization" {
		t.Fatalf("no Kustomization in %s/kustomization.yaml", k8sDir)
	}
	listed := map[string]bool{}
	for dir, k := range m.kustomize {
		if dir != k8sDir && k.Kind != "Component" {
			t.Errorf("%s: a folder below the base holds a Component, not a %s", dir, k.Kind)
		}
		for _, r := range k.Resources {
			p := filepath.Join(dir, r)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
			}
			listed[p] = true
		}
		for _, c := range k.Components {
			if ck, ok := m.kustomize[filepath.Join(dir, c)]; !ok || ck.Kind != "Component" {
				t.Errorf("%s/kustomization.yaml lists component %s, which has no Component kustomization.yaml", dir, c)
			}
			listed[filepath.Join(dir, c)] = true
		}
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(k8sDir, "*", "*.yaml"))
	for _, f := range append(files, more...) {
		if filepath.Base(f) != "kustomization.yaml" && !listed[f] {
			t.Errorf("%s is listed by no kustomization.yaml", f)
		}
	}
	for dir, k := range m.kustomize {
		if k.Kind == "Component" && !listed[dir] {
			t.Logf("component %s is not in the base (an alternative to switch to)", dir)
		}
	}
	var scalers []string
	for _, c := range base.Components {
		if strings.HasPrefix(c, "autoscale-") {
			scalers = append(scalers, c)
		}
	}
	if len(scalers) != 1 {
		t.Errorf("the base uses autoscalers %v: exactly one of autoscale-keda and autoscale-cpu", scalers)
	}
	for _, want := range []string{"autoscale-keda", "autoscale-cpu"} {
		if _, ok := m.kustomize[filepath.Join(k8sDir, want)]; !ok {
			t.Errorf("no component %s", want)
		}
	}
	if len(base.Images) != 1 || base.Images[0].Name != "saveaction" {
		t.Errorf("the base should set the image of every container named saveaction: %+v", base.Images)
	}
	for n, p := range m.podSpecs() {
		for _, c := range p.Spec.Containers {
			if c.Image != "saveaction" {
				t.Errorf("%s container %s: image %q, want saveaction (set by kustomize images)", n, c.Name, c.Image)
			}
		}
	}
}

// configNames is what `saveaction config names` prints: every variable the
// binary reads.
func configNames(t *testing.T) map[string]bool {
	t.Helper()
	if testing.Short() && os.Getenv("SAVEACTION_TEST_BIN") == "" {
		t.Skip("builds the binary: skipped with -short (set SAVEACTION_TEST_BIN to use a built one)")
	}
	var out []byte
	var err error
	if bin := os.Getenv("SAVEACTION_TEST_BIN"); bin != "" {
		out, err = exec.Command(bin, "config", "names").Output()
	} else {
		cmd := exec.Command("go", "run", "./cmd/saveaction", "config", "names")
		cmd.Dir = ".."
		out, err = cmd.Output()
	}
	if err != nil {
		t.Fatalf("saveaction config names: %v", err)
	}
	names := map[string]bool{}
	for _, n := range strings.Fields(string(out)) {
		names[n] = true
	}
	if !names["DATABASE_URL"] {
		t.Fatalf("saveaction config names: DATABASE_URL missing from %q", out)
	}
	if len(names) < 10 || !names["DATABASE_URL"] {
		t.Fatalf("saveaction config names printed %q", out)
	}
	return names
}

// containerEnv is a container's environment as Kubernetes would make it
// from the manifests (envFrom first, env over it), unexpanded.
func (m *manifests) containerEnv(t *testing.T, where string, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %s does not exist", where, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			if !ok {
				t.Errorf("%s: envFrom Secret %s does not exist", where, from.SecretRef.Name)
				continue
			}
			for k, v := range s.StringData {
				env[k] = v
			}
			for k, v := range s.Data {
				env[k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := m.secrets[ref.Name]
			if _, has := s.StringData[ref.Key]; !ok || !has {
				t.Errorf("%s: %s from Secret %s key %s, which does not exist", where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = s.StringData[ref.Key]
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "<" + e.ValueFrom.FieldRef.FieldPath + ">"
		default:
			env[e.Name] = "<ref>"
		}
	}
	return env
}

// TestManifestEnvironmentIsWhatTheBinaryReads: every variable a container
// gets (its env, and every key of the ConfigMaps and Secrets it takes
// whole) is one the binary reads. The one exception is a downward-API
// variable that only feeds another's $(NAME) expansion (POD_IP).
func TestManifestEnvironmentIsWhatTheBinaryReads(t *testing.T) {
	m := loadManifests(t)
	names := configNames(t)
	for n, p := range m.podSpecs() {
		for _, c := range p.Spec.Containers {
			where := n + " container " + c.Name
			env := m.containerEnv(t, where, c)
			for k := range env {
				if names[k] {
					continue
				}
				used := false
				for _, e := range c.Env {
					if e.Name == k && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
						for _, o := range c.Env {
							used = used || strings.Contains(o.Value, "$("+k+")")
						}
					}
				}
				if !used {
					t.Errorf("%s: %s is not a variable the binary reads (saveaction config names)", where, k)
				}
			}
			for _, e := range c.Env {
				for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
					if i := slices.IndexFunc(c.Env, func(o corev1.EnvVar) bool { return o.Name == ref[1] }); i < 0 || i > slices.IndexFunc(c.Env, func(o corev1.EnvVar) bool { return o.Name == e.Name }) {
						t.Errorf("%s: %s expands $(%s), which is not defined before it", where, e.Name, ref[1])
					}
				}
			}
		}
	}
	for name, cm := range m.configMaps {
		for k := range cm.Data {
			if !names[k] {
				t.Errorf("ConfigMap %s: %s is not a variable the binary reads", name, k)
			}
		}
	}
}

// TestWorkerStopsWithinItsGrace: the pod's grace is above the drain
// (SHUTDOWN_GRACE_SECONDS) plus the hand-back the binary allows after it
// (15 s, workerService's StopTimeout), and a preStop hook starts the drain.
func TestWorkerStopsWithinItsGrace(t *testing.T) {
	m := loadManifests(t)
	w, ok := m.deployments["saveaction-worker"]
	if !ok {
		t.Fatal("no saveaction-worker Deployment")
	}
	c := w.Spec.Template.Spec.Containers[0]
	env := m.containerEnv(t, "worker", c)
	if env["CLUSTER_PROVIDER"] != "k8s" {
		t.Errorf("worker CLUSTER_PROVIDER=%q, want k8s", env["CLUSTER_PROVIDER"])
	}
	grace, err := strconv.Atoi(env["SHUTDOWN_GRACE_SECONDS"])
	if err != nil {
		t.Fatalf("worker SHUTDOWN_GRACE_SECONDS=%q: %v", env["SHUTDOWN_GRACE_SECONDS"], err)
	}
	const handBack = 15
	pod := w.Spec.Template.Spec.TerminationGracePeriodSeconds
	if pod == nil || *pod <= int64(grace+handBack) {
		t.Errorf("worker terminationGracePeriodSeconds %d, want above SHUTDOWN_GRACE_SECONDS %d + %d s of hand-back", ptrOr(pod), grace, handBack)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
		!strings.Contains(strings.Join(c.Lifecycle.PreStop.Exec.Command, " "), "kill -TERM 1") {
		t.Errorf("worker has no preStop hook that starts the drain (SIGTERM to the worker): %+v", c.Lifecycle)
	}
	if !strings.HasPrefix(c.Env[slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "WORKER_NAME" })].ValueFrom.FieldRef.FieldPath, "metadata.name") {
		t.Error("WORKER_NAME should be the pod's name, unique in the fleet")
	}
	if s := w.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Error("a worker rollout should add a worker before it drains one (maxUnavailable 0)")
	}
}

// TestSelectorsMatchPods: each Deployment selects its own pods, each
// Service and PodDisruptionBudget selects a Deployment's pods, each
// autoscaler targets a Deployment.
func TestSelectorsMatchPods(t *testing.T) {
	m := loadManifests(t)
	selects := func(sel *metav1.LabelSelector) []string {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			return nil
		}
		var out []string
		for n, d := range m.deployments {
			if s.Matches(labels.Set(d.Spec.Template.Labels)) {
				out = append(out, n)
			}
		}
		return out
	}
	for n, d := range m.deployments {
		if got := selects(d.Spec.Selector); !slices.Equal(got, []string{n}) {
			t.Errorf("Deployment %s's selector matches the pods of %v", n, got)
		}
	}
	for _, s := range m.services {
		got := selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(got) != 1 {
			t.Errorf("Service %s selects the pods of %v, want one Deployment", s.Name, got)
			continue
		}
		ports := map[string]bool{}
		for _, c := range m.deployments[got[0]].Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[p.Name] = true
				ports[strconv.Itoa(int(p.ContainerPort))] = true
			}
		}
		for _, p := range s.Spec.Ports {
			if !ports[p.TargetPort.String()] {
				t.Errorf("Service %s targets port %s, which %s's containers do not declare", s.Name, p.TargetPort.String(), got[0])
			}
		}
	}
	covered := map[string]bool{}
	for _, p := range m.pdbs {
		got := selects(p.Spec.Selector)
		if len(got) != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %v, want one Deployment", p.Name, got)
		}
		for _, g := range got {
			covered[g] = true
		}
	}
	for n := range m.deployments {
		if !covered[n] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", n)
		}
	}
	for _, h := range m.hpas {
		if _, ok := m.deployments[h.Spec.ScaleTargetRef.Name]; !ok || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HPA %s targets %s %s, not one of our Deployments", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, s := range m.scaled {
		if _, ok := m.deployments[s.Spec.ScaleTargetRef.Name]; !ok {
			t.Errorf("ScaledObject %s targets %s, not one of our Deployments", s.Metadata.Name, s.Spec.ScaleTargetRef.Name)
		}
	}
	for n, p := range m.podSpecs() {
		if sa := p.Spec.ServiceAccountName; sa != "" && !m.accounts[sa] {
			t.Errorf("%s runs as ServiceAccount %s, which does not exist", n, sa)
		}
	}
}

// providerVerbs reads protoactor's Kubernetes provider (the version in
// go.mod) for the pod calls it makes: Pods(ns).Get, .Watch, .Patch...
func providerVerbs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/asynkron/protoactor-go").Output()
	if err != nil {
		t.Fatalf("go list protoactor-go: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "cluster", "clusterproviders", "k8s")
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	call := regexp.MustCompile(`\.Pods\((?:[^()]|\([^()]*\))*\)\.(\w+)\(`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllSubmatch(src, -1) {
			seen[strings.ToLower(string(m[1]))] = true
		}
	}
	if len(seen) == 0 {
		t.Fatalf("found no pod calls in %s: has the provider moved?", dir)
	}
	var verbs []string
	for v := range seen {
		verbs = append(verbs, v)
	}
	slices.Sort(verbs)
	return verbs
}

// TestRBACCoversTheClusterProvider: the Role bound to the pods' service
// account grants every verb on pods that protoactor's k8s provider calls.
func TestRBACCoversTheClusterProvider(t *testing.T) {
	m := loadManifests(t)
	need := providerVerbs(t)
	t.Logf("protoactor's k8s provider calls %v on pods", need)
	for n, p := range m.podSpecs() {
		if !strings.HasPrefix(n, "deployment/") {
			continue
		}
		sa := p.Spec.ServiceAccountName
		granted := map[string]bool{}
		for _, b := range m.bindings {
			bound := slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == "ServiceAccount" && s.Name == sa })
			role, ok := m.roles[b.RoleRef.Name]
			if !bound || b.RoleRef.Kind != "Role" || !ok {
				continue
			}
			for _, r := range role.Rules {
				if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") {
					for _, v := range r.Verbs {
						granted[v] = true
					}
				}
			}
		}
		for _, v := range need {
			if !granted[v] && !granted["*"] {
				t.Errorf("%s (ServiceAccount %q) may not %s pods, which the k8s cluster provider does", n, sa, v)
			}
		}
	}
}

// TestKEDAWatchesOurStream: the ScaledObject's Redis address and stream
// are those the binary uses (REDIS_URL, REDIS_PREFIX + the stream), and it
// scales on stream length with a target of a worker's slots.
func TestKEDAWatchesOurStream(t *testing.T) {
	m := loadManifests(t)
	if len(m.scaled) != 1 || len(m.scaled[0].Spec.Triggers) != 1 {
		t.Fatalf("want one ScaledObject with one trigger, have %d", len(m.scaled))
	}
	tr := m.scaled[0].Spec.Triggers[0]
	env := m.containerEnv(t, "worker", m.deployments["saveaction-worker"].Spec.Template.Spec.Containers[0])
	u, err := url.Parse(env["REDIS_URL"])
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", env["REDIS_URL"], err)
	}
	want := map[string]string{
		"address":       u.Host,
		"stream":        env["REDIS_PREFIX"] + queue.DefaultStream,
		"consumerGroup": queue.DefaultGroup,
		"streamLength":  env["WORKER_CONCURRENCY"],
	}
	if tr.Type != "redis-streams" {
		t.Errorf("trigger type %q, want redis-streams", tr.Type)
	}
	for k, v := range want {
		if tr.Metadata[k] != v {
			t.Errorf("trigger %s = %q, want %q", k, tr.Metadata[k], v)
		}
	}
	for _, k := range []string{"pendingEntriesCount", "lagCount"} {
		if _, ok := tr.Metadata[k]; ok {
			t.Errorf("trigger sets %s: it scales on stream length only", k)
		}
	}
}

// TestPrometheusScrapesThePods: the pods' annotations name a port their
// container declares and serves metrics on, and prometheus-k8s.yml keeps
// exactly the pods of its job.
func TestPrometheusScrapesThePods(t *testing.T) {
	m := loadManifests(t)
	raw, err := os.ReadFile("prometheus/prometheus-k8s.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName             string           `json:"job_name"`
			KubernetesSDConfigs []map[string]any `json:"kubernetes_sd_configs"`
			RelabelConfigs      []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]string{"saveaction-api": "PORT", "saveaction-worker": "METRICS_PORT"}
	for _, sc := range cfg.ScrapeConfigs {
		portVar, ok := jobs[sc.JobName]
		if !ok {
			t.Errorf("unexpected job %s", sc.JobName)
			continue
		}
		delete(jobs, sc.JobName)
		if len(sc.KubernetesSDConfigs) != 1 || sc.KubernetesSDConfigs[0]["role"] != "pod" {
			t.Errorf("job %s: want one kubernetes_sd_configs of role pod", sc.JobName)
		}
		var kept []string
		for n, d := range m.deployments {
			pod := d.Spec.Template
			keep := true
			for _, r := range sc.RelabelConfigs {
				if r.Action != "keep" {
					continue
				}
				var vals []string
				for _, l := range r.SourceLabels {
					switch {
					case strings.HasPrefix(l, "__meta_kubernetes_pod_label_"):
						vals = append(vals, podMeta(pod.Labels, strings.TrimPrefix(l, "__meta_kubernetes_pod_label_")))
					case strings.HasPrefix(l, "__meta_kubernetes_pod_annotation_"):
						vals = append(vals, podMeta(pod.Annotations, strings.TrimPrefix(l, "__meta_kubernetes_pod_annotation_")))
					default:
						t.Fatalf("job %s keeps on %s, which this test cannot evaluate", sc.JobName, l)
					}
				}
				keep = keep && regexp.MustCompile("^(?:"+r.Regex+")$").MatchString(strings.Join(vals, ";"))
			}
			if keep {
				kept = append(kept, n)
			}
		}
		if len(kept) != 1 {
			t.Errorf("job %s keeps the pods of %v, want one Deployment", sc.JobName, kept)
			continue
		}
		pod := m.deployments[kept[0]].Spec.Template
		c := pod.Spec.Containers[0]
		port := pod.Annotations["prometheus.io/port"]
		if env := m.containerEnv(t, kept[0], c); env[portVar] != port {
			t.Errorf("%s: scraped on port %s but %s=%s", kept[0], port, portVar, env[portVar])
		}
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return strconv.Itoa(int(p.ContainerPort)) == port }) {
			t.Errorf("%s: scraped on port %s, which its container does not declare", kept[0], port)
		}
		if pod.Annotations["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: metrics path %q", kept[0], pod.Annotations["prometheus.io/path"])
		}
	}
	for j := range jobs {
		t.Errorf("prometheus-k8s.yml has no job %s (alerts.yml and the dashboard read it)", j)
	}
}

// podMeta finds a label or annotation by its Prometheus-sanitised name.
func podMeta(kv map[string]string, sanitised string) string {
	for k, v := range kv {
		if regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(k, "_") == sanitised {
			return v
		}
	}
	return ""
}

// TestPrometheusK8sConfigChecks runs promtool on prometheus-k8s.yml.
// Debian's Prometheus is built without Kubernetes discovery, so its
// promtool does not know kubernetes_sd_configs: the check runs on a copy
// whose discovery is a static target, which still checks every relabel
// rule, the rule file and the rest (TestPrometheusScrapesThePods checks
// the discovery block itself).
func TestPrometheusK8sConfigChecks(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is missing in CI: .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	raw, err := os.ReadFile("prometheus/prometheus-k8s.yml")
	if err != nil {
		t.Fatal(err)
	}
	sd := "kubernetes_sd_configs:\n      - role: pod\n"
	if n := bytes.Count(raw, []byte(sd)); n != 2 {
		t.Fatalf("prometheus-k8s.yml: %d pod discovery blocks, want 2", n)
	}
	dir := t.TempDir()
	static := bytes.ReplaceAll(raw, []byte(sd), []byte("static_configs:\n      - targets: [\"pod.invalid:1\"]\n"))
	alerts, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"prometheus.yml": static, "alerts.yml": alerts} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(bin, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config prometheus-k8s.yml (discovery made static): %v\n%s", err, out)
	}
}

func ptrOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// TestPrometheusK8sRelabelling runs a real Prometheus on prometheus-k8s.yml
// with the Kubernetes discovery replaced by a file holding the labels that
// discovery would give our pods (and one foreign pod): the relabelling
// must make one target per Deployment, under its job, at the pod's IP and
// annotated port and path, and drop the foreign pod.
func TestPrometheusK8sRelabelling(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is missing in CI: .ci/run installs Debian's prometheus package")
		}
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	m := loadManifests(t)
	sanitise := regexp.MustCompile(`[^a-zA-Z0-9_]`)
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	pod := func(name string, labels, annotations map[string]string) group {
		g := group{Targets: []string{"discovered.invalid:1"}, Labels: map[string]string{
			"__meta_kubernetes_pod_ip": "10.1.2.3", "__meta_kubernetes_namespace": "ns", "__meta_kubernetes_pod_name": name}}
		for k, v := range labels {
			g.Labels["__meta_kubernetes_pod_label_"+sanitise.ReplaceAllString(k, "_")] = v
		}
		for k, v := range annotations {
			g.Labels["__meta_kubernetes_pod_annotation_"+sanitise.ReplaceAllString(k, "_")] = v
		}
		return g
	}
	groups := []group{pod("other-0", map[string]string{"app.kubernetes.io/name": "other"},
		map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8080"})}
	want := map[string]string{} // job → address
	for n, d := range m.deployments {
		groups = append(groups, pod(n+"-0", d.Spec.Template.Labels, d.Spec.Template.Annotations))
		job := "saveaction-" + d.Spec.Template.Labels["app.kubernetes.io/component"]
		want[job] = "10.1.2.3:" + d.Spec.Template.Annotations["prometheus.io/port"]
	}
	dir := t.TempDir()
	sdFile := filepath.Join(dir, "pods.json")
	raw, err := yaml.Marshal(groups) // YAML is what file_sd reads from .yml
	if err != nil {
		t.Fatal(err)
	}
	sdFile = strings.TrimSuffix(sdFile, ".json") + ".yml"
	if err := os.WriteFile(sdFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("prometheus/prometheus-k8s.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.ReplaceAll(cfg, []byte("kubernetes_sd_configs:\n      - role: pod\n"),
		[]byte("file_sd_configs:\n      - files: [\""+sdFile+"\"]\n"))
	cfg = bytes.ReplaceAll(cfg, []byte("rule_files:\n  - alerts.yml\n"), nil)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	var logs bytes.Buffer
	prom.Stdout, prom.Stderr = &logs, &logs
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})
	var targets struct {
		Data struct {
			Active []struct {
				Labels           map[string]string `json:"labels"`
				DiscoveredLabels map[string]string `json:"discoveredLabels"`
				ScrapeURL        string            `json:"scrapeUrl"`
			} `json:"activeTargets"`
			Dropped []struct {
				DiscoveredLabels map[string]string `json:"discoveredLabels"`
			} `json:"droppedTargets"`
		} `json:"data"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/targets")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		if err == nil && len(targets.Data.Active)+len(targets.Data.Dropped) >= 2*len(groups) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never listed the targets (%v): %+v", err, targets.Data)
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := map[string]string{}
	for _, a := range targets.Data.Active {
		job := a.Labels["job"]
		if _, dup := got[job]; dup {
			t.Errorf("job %s has more than one target", job)
		}
		got[job] = a.Labels["instance"]
		if !strings.HasSuffix(a.ScrapeURL, "/metrics") || a.Labels["namespace"] != "ns" || a.Labels["pod"] == "" {
			t.Errorf("job %s target %+v: want /metrics, namespace and pod labels", job, a)
		}
	}
	for job, address := range want {
		if got[job] != address {
			t.Errorf("job %s scrapes %q, want %q (all: %v)", job, got[job], address, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("active targets %v, want %v: the foreign pod must be dropped", got, want)
	}
}
