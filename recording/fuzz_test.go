package recording

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it fails only with a
// *ValidationError, and that a recording it accepts survives
// MarshalJSON→Parse unchanged. The seeds run as a normal test.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"legacy_checkout.json", "selectors_modal.json", "relative_old_version.json", "invalid/many_problems.json"} {
		f.Add(readFixture(f, name))
	}
	for _, seed := range []string{
		"",
		"null",
		"[]",
		`"rec"`,
		"{",
		`{"id":"r"} trailing`,
		string(withActions("")),
		string(withActions(`{"id":"act_1","type":"click","timestamp":1e13,"completedAt":-1,"url":"","selector":{"ID":"x","id":"y"},"Selector":null}`)),
		string(withActions(`{"id":"act_2","type":"scroll","timestamp":0,"url":"","element":{"css":"#a","position":{"parent":"p","index":0,"extra":1}}},null`)),
		string(withActions(`{"id":"a","type":"select","timestamp":0,"url":"","selector":{"id":"s"},"selectedOptions":[{"index":1,"label":"<b>"}],"selectedText":""}`)),
		string(withActions(`{"id":"a","type":"input","timestamp":1.5e-300,"url":"","selectors":[{"strategy":"id","value":{"a":[1,2]},"context":["x"]}],"value":"${X}"}`)),
		`{"id":"r","version":"2","testName":"t","url":"file:///x","startTime":"","userAgent":"","viewport":{"width":1e308,"height":1},"actions":[],"variables":[{"name":"N","x":{}}],"z":[]}`,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Parse error %v (%T), want a *ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if strings.HasPrefix(p.Message, "cannot decode") {
					t.Fatalf("validation missed a problem the decoder found: %s", p)
				}
			}
			if r != nil {
				t.Fatal("Parse returned a recording with an error")
			}
			return
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal of a parsed recording: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(r)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the recording:\nin  %s\nout %s", data, out)
		}
		// Normalize and the helpers must cope with anything Parse accepts.
		n := Normalize(r)
		if len(n.Actions) != len(r.Actions) {
			t.Fatalf("Normalize changed the action count: %d → %d", len(r.Actions), len(n.Actions))
		}
		_ = n.EstimatedDurationMs()
		_ = r.VariableNames()
		for _, a := range n.Actions {
			_ = SelectorOrder(a.Selector)
			for _, e := range a.Selectors {
				_ = e.StringValue()
			}
		}
	})
}
