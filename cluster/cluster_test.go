package cluster

import "testing"

func TestWorkerOfMemberIDs(t *testing.T) {
	cases := []struct{ id, want string }{
		{"cw-a~2b5765", "cw-a"},    // automanaged: the actor system's id
		{"sa@cw-b~925b43", "cw-b"}, // etcd: cluster@id
		{"host-12-ab.c~00ff00", "host-12-ab.c"},
		{"3f1c2a9e0b", ""}, // k8s or an API client: no worker
		{"", ""},
	}
	for _, c := range cases {
		if got := WorkerOf(c.id); got != c.want {
			t.Errorf("WorkerOf(%q) = %q, want %q", c.id, got, c.want)
		}
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Provider: "none"}, ""},
		{Config{Provider: "etcd", Name: "x"}, "CLUSTER_ETCD_ENDPOINTS"},
		{Config{Provider: "automanaged", Name: "x", Port: 1}, "CLUSTER_HOSTS"},
		{Config{Provider: "automanaged", Name: "x", Hosts: []string{"a:1"}, Port: 70000}, "CLUSTER_PORT"},
		{Config{Provider: "automanaged", Name: "x", Hosts: []string{"a:1"}}, ""}, // a client needs no port
		{Config{Provider: "k8s", Name: ""}, "CLUSTER_NAME"},
		{Config{Provider: "consul", Name: "x"}, "CLUSTER_PROVIDER"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v does not name %s", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
