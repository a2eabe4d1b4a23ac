package actors

import "testing"

func TestRedactRemovesVariableValues(t *testing.T) {
	vars := map[string]string{"PASSWORD": "hunter22", "USER": "alice@example.com", "PIN": "42", "LONG": "hunter22-extra"}
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"typed hunter22 into #pw", "typed *** into #pw"},
		{"value hunter22-extra kept whole", "value *** kept whole"},
		{"no alice@example.com here", "no *** here"},
		{"short values (42) stay: they would blank out words", "short values (42) stay: they would blank out words"},
	} {
		if got := redact(c.in, vars); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := redact("anything hunter22", nil); got != "anything hunter22" {
		t.Errorf("no variables: %q", got)
	}
}
