package main

import (
	"strings"
	"testing"
)

// Cluster settings that cannot work stop start-up naming the variable; a
// complete one loads.
func TestClusterConfiguration(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		names string // "" = valid
	}{
		{"none is the default", map[string]string{}, ""},
		{"unknown provider", map[string]string{"CLUSTER_PROVIDER": "zookeeper"}, "CLUSTER_PROVIDER"},
		{"automanaged needs hosts", map[string]string{"CLUSTER_PROVIDER": "automanaged", "CLUSTER_PORT": "6330"}, "CLUSTER_HOSTS"},
		{"automanaged hosts are host:port", map[string]string{"CLUSTER_PROVIDER": "automanaged", "CLUSTER_PORT": "6330", "CLUSTER_HOSTS": "a:1,b"}, "CLUSTER_HOSTS"},
		{"automanaged port in range", map[string]string{"CLUSTER_PROVIDER": "automanaged", "CLUSTER_HOSTS": "a:1", "CLUSTER_PORT": "70000"}, "CLUSTER_PORT"},
		{"automanaged", map[string]string{"CLUSTER_PROVIDER": "automanaged", "CLUSTER_HOSTS": "127.0.0.1:6330, 127.0.0.1:6331", "CLUSTER_PORT": "6330"}, ""},
		{"etcd needs endpoints", map[string]string{"CLUSTER_PROVIDER": "etcd"}, "CLUSTER_ETCD_ENDPOINTS"},
		{"etcd needs a name", map[string]string{"CLUSTER_PROVIDER": "etcd", "CLUSTER_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "CLUSTER_NAME": ""}, "CLUSTER_NAME"},
		{"etcd", map[string]string{"CLUSTER_PROVIDER": "etcd", "CLUSTER_ETCD_ENDPOINTS": "http://127.0.0.1:2379"}, ""},
		{"k8s", map[string]string{"CLUSTER_PROVIDER": "k8s"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"CLUSTER_PROVIDER", "CLUSTER_HOSTS", "CLUSTER_PORT", "CLUSTER_ETCD_ENDPOINTS", "CLUSTER_NAME"} {
				t.Setenv(k, configDefaults[k])
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, _, err := loadConfig("test", nil, nil)
			if c.names == "" {
				if err != nil {
					t.Fatalf("valid settings refused: %v", err)
				}
				if p := c.env["CLUSTER_PROVIDER"]; p != "" && cfg.Cluster.Provider != p {
					t.Fatalf("provider %q, want %q", cfg.Cluster.Provider, p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %v does not name %s", err, c.names)
			}
		})
	}
}
