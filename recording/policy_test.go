package recording

import (
	"errors"
	"testing"
)

func TestURLPolicy(t *testing.T) {
	tests := []struct {
		url               string
		navOK, resourceOK bool
	}{
		{"https://example.com/", true, true},
		{"HTTP://example.com/", true, true},
		{"/relative/path", true, true},
		{"about:blank", true, true},
		{"about:srcdoc", false, true},
		{"data:text/html,hi", false, true},
		{"blob:https://example.com/1", false, true},
		{"file:///etc/passwd", false, false},
		{" \tfi\nle:///etc/passwd", false, false},
		{"FILE:///etc/passwd", false, false},
		{"chrome://settings", false, false},
		{"chrome-untrusted://x", false, false},
		{"devtools://devtools/bundled/inspector.html", false, false},
		{"view-source:https://example.com/", false, false},
		{"chrome-extension://abc/x.html", false, false},
		{"filesystem:https://example.com/temporary/x", false, false},
		{"javascript:alert(1)", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckNavigationURL(tt.url)
			if (err == nil) != tt.navOK {
				t.Errorf("CheckNavigationURL = %v, want ok %v", err, tt.navOK)
			}
			var pe *PolicyError
			if err != nil && (!errors.As(err, &pe) || pe.URL != tt.url) {
				t.Errorf("error %v is not a PolicyError naming the URL", err)
			}
			if err := CheckResourceURL(tt.url); (err == nil) != tt.resourceOK {
				t.Errorf("CheckResourceURL = %v, want ok %v", err, tt.resourceOK)
			}
		})
	}
}

func TestCheckURLPolicyPaths(t *testing.T) {
	r := &Recording{URL: "file:///etc/passwd", Actions: []Action{
		{URL: "https://a.example/"},
		{URL: "https://a.example/", To: "chrome://version"},
		{URL: "view-source:https://a.example/"},
	}}
	var paths []string
	for _, p := range CheckURLPolicy(r) {
		paths = append(paths, p.Path)
	}
	want := []string{"url", "actions[1].to", "actions[2].url"}
	if len(paths) != len(want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("paths %v, want %v", paths, want)
		}
	}
}
