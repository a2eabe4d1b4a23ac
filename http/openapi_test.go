package http

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes fails when a route is added without its
// document entry, or the document names a route that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var registered []string
	for _, r := range h.app.GetRoutes(true) {
		if r.Method == "HEAD" { // Fiber adds HEAD to every GET
			continue
		}
		registered = append(registered, strings.ToLower(r.Method)+" "+fiberParam.ReplaceAllString(r.Path, "{$1}"))
	}
	res := h.do("GET", "/api/openapi.json", nil, noAuth()).must(t, 200)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(res.Raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(registered)
	registered = slices.Compact(registered)
	slices.Sort(documented)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("the OpenAPI document lists %s, which is not a route", d)
		}
	}
	// Every $ref points at a schema that exists.
	for _, m := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(res.Raw), -1) {
		if _, ok := doc.Comps.Schemas[m[1]]; !ok {
			t.Errorf("dangling $ref %s", m[1])
		}
	}
}
