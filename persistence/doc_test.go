package persistence_test

import (
	"os"
	"strings"
	"testing"

	"github.com/saveaction/runner/persistence"
)

// The architecture document lists every transition of the lifecycle table.
func TestArchitectureDocumentListsEveryTransition(t *testing.T) {
	doc, err := os.ReadFile("../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range persistence.Lifecycle() {
		if !strings.Contains(string(doc), "`"+string(r.Transition)+"`") {
			t.Errorf("docs/ARCHITECTURE.md does not list the transition %s", r.Transition)
		}
	}
}
