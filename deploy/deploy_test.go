// Package deploy holds what runs the service in production (image, compose,
// Prometheus, Grafana, Kubernetes); its tests check those files.
package deploy

import (
	"os"
	"os/exec"
	"testing"
)

// promtool runs Prometheus's own checker on our configuration and the unit
// tests of every alert. It needs Debian's prometheus package, which CI
// installs; elsewhere the test is skipped.
func TestPrometheusConfigAndAlerts(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is missing in CI: .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
