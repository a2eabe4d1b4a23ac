package recording

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

func mustParse(t testing.TB, data []byte) *Recording {
	t.Helper()
	r, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file     string
		id       string
		actions  int
		vars     int
		warnings []string
		check    func(t *testing.T, r *Recording)
	}{
		{
			file: "legacy_checkout.json", id: "rec_1769843858000", actions: 10, vars: 2,
			check: func(t *testing.T, r *Recording) {
				if r.Viewport != (Size{Width: 1280, Height: 720}) || r.DevicePixelRatio != 2 {
					t.Errorf("viewport %+v dpr %v", r.Viewport, r.DevicePixelRatio)
				}
				a := r.Actions[0]
				if a.Selector == nil || a.Selector.ID != "checkout-btn" || !slices.Equal(a.Selector.Priority, []string{"id", "css", "xpath", "text"}) {
					t.Errorf("act_001 selector = %+v", a.Selector)
				}
				if a.CompletedAt == nil || *a.CompletedAt != 1769843858153 {
					t.Errorf("act_001 completedAt = %v", a.CompletedAt)
				}
				for _, k := range []string{"clickIntent", "validation", "elementState", "waitConditions", "alternativeSelectors", "isProgrammatic"} {
					if _, ok := a.Extra[k]; !ok {
						t.Errorf("act_001 Extra lacks %q", k)
					}
				}
				if _, ok := a.Selector.Extra["fallback"]; !ok {
					t.Error("selector Extra lacks fallback")
				}
				if in := r.Actions[2]; in.Value == nil || *in.Value != "${CUSTOMER_EMAIL}" || in.TypingDelay != 85 {
					t.Errorf("act_003 = %+v", in)
				}
				if sel := r.Actions[4]; sel.SelectedIndex == nil || *sel.SelectedIndex != 2 || *sel.SelectedValue != "uk" {
					t.Errorf("act_005 = %+v", sel)
				}
				if got := string(r.Actions[5].Element); got != `"window"` {
					t.Errorf("act_006 element = %s", got)
				}
				if c := r.Actions[6]; c.Checked == nil || !*c.Checked || c.Selector.Position == nil || c.Selector.Position.Index != 4 {
					t.Errorf("act_007 = %+v", c)
				}
				if _, ok := r.Extra["recorderVersion"]; !ok {
					t.Error("Extra lacks recorderVersion")
				}
				if _, ok := r.Variables[1].Extra["sensitive"]; !ok {
					t.Error("variable Extra lacks sensitive")
				}
			},
		},
		{
			file: "selectors_modal.json", id: "rec_1770210044512", actions: 9,
			warnings: []string{`actions[4].type: unknown action type "dialog"; it will be skipped`},
			check: func(t *testing.T, r *Recording) {
				click := r.Actions[2]
				if len(click.Selectors) != 5 || click.Selectors[0].Strategy != "data-testid" || click.Selectors[0].Confidence != 95 {
					t.Errorf("act_002 selectors = %+v", click.Selectors)
				}
				if got := string(click.Selectors[2].Context); got != `"hotel-card__title"` {
					t.Errorf("selectors[2].context = %s", got)
				}
				if got := string(click.Context); !strings.HasPrefix(got, `{"isInsideModal":false`) {
					t.Errorf("context not compacted: %s", got)
				}
				if _, ok := click.Extra["contentSignature"]; !ok {
					t.Error("Extra lacks contentSignature")
				}
				if opt := r.Actions[3].SelectedOptions; len(opt) != 2 || opt[0].Extra["label"] == nil {
					t.Errorf("selectedOptions = %+v", opt)
				}
				if r.Actions[4].Type != "dialog" || r.Actions[4].Extra["dialogType"] == nil {
					t.Errorf("dialog action = %+v", r.Actions[4])
				}
				if nav := r.Actions[8]; nav.To != "" || nav.URL == "" {
					t.Errorf("navigation falls back to url: %+v", nav)
				}
			},
		},
		{
			file: "relative_old_version.json", id: "rec_1706685458000", actions: 3,
			warnings: []string{`version: "0.9.0" is not 1.0.0; loading it anyway`},
			check: func(t *testing.T, r *Recording) {
				if r.UserAgent != "" || r.WindowSize != nil {
					t.Errorf("optional fields: %+v", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := mustParse(t, readFixture(t, tt.file))
			if r.ID != tt.id || len(r.Actions) != tt.actions || len(r.Variables) != tt.vars {
				t.Fatalf("got id %q, %d actions, %d variables", r.ID, len(r.Actions), len(r.Variables))
			}
			if !slices.Equal(r.Warnings, tt.warnings) {
				t.Errorf("warnings = %q, want %q", r.Warnings, tt.warnings)
			}
			tt.check(t, r)
		})
	}
}

// decodeAny decodes JSON for a comparison that ignores key order and
// formatting.
func decodeAny(t testing.TB, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

func TestRoundTripKeepsEveryKey(t *testing.T) {
	files := []string{"legacy_checkout.json", "selectors_modal.json", "relative_old_version.json"}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data := readFixture(t, f)
			r := mustParse(t, data)
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			want, got := decodeAny(t, data), decodeAny(t, out)
			if !reflect.DeepEqual(want, got) {
				wb, _ := json.MarshalIndent(want, "", " ")
				gb, _ := json.MarshalIndent(got, "", " ")
				t.Fatalf("round trip changed the document:\nwant %s\ngot  %s", wb, gb)
			}
			again := mustParse(t, out)
			if !reflect.DeepEqual(r, again) {
				t.Errorf("Parse(Marshal(r)) differs from r")
			}
		})
	}
}

func TestRoundTripEdgeValues(t *testing.T) {
	// Values the typed fields would drop (omitempty on false, "", [] and
	// null) and keys differing from a field name only in case.
	const base = `{"id":"r","version":"1.0.0","testName":"t","url":"about:blank","startTime":"","userAgent":"ua",
		"viewport":{"width":1,"height":1},"endTime":"","variables":[],"ID":"upper",
		"actions":[{"id":"a1","type":"click","timestamp":0,"url":"","selector":{"id":"x","priority":[],"css":""},
		"isOptional":false,"text":"","modifiers":[],"checked":null,"context":null,"Type":"x","html":"<b>&</b>"}]}`
	r := mustParse(t, []byte(base))
	if r.Actions[0].Type != "click" || r.ID != "r" {
		t.Fatalf("case-folded key reached a field: %+v", r)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want, got := decodeAny(t, []byte(base)), decodeAny(t, out); !reflect.DeepEqual(want, got) {
		t.Fatalf("round trip changed the document:\n%s", out)
	}
	if again := mustParse(t, out); !reflect.DeepEqual(r, again) {
		t.Errorf("Parse(Marshal(r)) differs from r")
	}
}

func TestMarshalFieldWinsOverExtra(t *testing.T) {
	r := mustParse(t, readFixture(t, "relative_old_version.json"))
	r.Extra = map[string]json.RawMessage{"testName": json.RawMessage(`"stale"`)}
	r.TestName = "fresh"
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeAny(t, out).(map[string]any)["testName"]; got != "fresh" {
		t.Errorf("testName = %v", got)
	}
}

func problemStrings(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestParseInvalidFixture(t *testing.T) {
	_, err := Parse(readFixture(t, "invalid/many_problems.json"))
	want := []string{
		"id: must not be empty",
		"testName: required",
		"url: must be an absolute URL (http, https, file, about:blank)",
		"startTime: must be a string",
		"viewport.width: must be a positive number",
		"viewport.height: must be a number",
		"devicePixelRatio: must be a positive number",
		"actions[0].selector: required (selector or selectors)",
		"actions[1].type: required",
		"actions[2].selector: has no strategy with a value (and no selectors)",
		"actions[2].value: required",
		"actions[3].selectedValue: required (one of selectedValue, selectedText, selectedIndex)",
		"actions[4].to: required (and no url to fall back to)",
		"actions[5].selector: required",
		`actions[6].element: must be "window" or a selector object`,
		"actions[7].key: required",
		"actions[8].selector: required",
		`actions[9].checkType: must be one of urlMatch, urlContains, elementVisible, elementText, containsText, elementHasValue, pageTitle, pageLoad (got "elementExists")`,
		"actions[10].event: required",
		"actions[11].timestamp: must be a non-negative number",
		"actions[11].selectors[0].strategy: must not be empty",
		"actions[11].selectors[0].value: required",
		"actions[11].selectors[0].confidence: must be between 0 and 100",
		`actions[11].button: must be one of left, right, middle (got "primary")`,
		"actions[11].clickCount: must be an integer within range",
		`actions[11].modifiers[0]: must be one of ctrl, shift, alt, meta (got "Control")`,
		"actions[12]: must be an object",
		"variables[0].name: required",
	}
	got := problemStrings(err)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if !strings.HasPrefix(err.Error(), "invalid recording: 28 problems: id: must not be empty; testName: required;") ||
		!strings.HasSuffix(err.Error(), "; and 23 more") {
		t.Errorf("Error() = %q", err.Error())
	}
}

// minimal is a valid recording with one click; tests splice into it.
const minimal = `{"id":"rec_1","version":"1.0.0","testName":"t","url":"https://example.com/","startTime":"s",
"viewport":{"width":800,"height":600},"userAgent":"ua","actions":[%s]}`

func withActions(actions string) []byte {
	return []byte(strings.Replace(minimal, "%s", actions, 1))
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  []string // nil means valid
	}{
		{"minimal valid", withActions(""), nil},
		{"not JSON", []byte("{\"id\": "), []string{"$: invalid JSON at byte 7: unexpected end of JSON input"}},
		{"garbage", []byte("recording"), []string{"$: invalid JSON at byte 1: invalid character 'r' looking for beginning of value"}},
		{"trailing data", []byte(`{} {}`), []string{"$: invalid JSON at byte 4: invalid character '{' after top-level value"}},
		{"empty input", nil, []string{"$: invalid JSON at byte 0: unexpected end of JSON input"}},
		{"array", []byte(`[]`), []string{"$: must be a JSON object"}},
		{"null", []byte(`null`), []string{"$: must be a JSON object"}},
		{"empty object", []byte(`{}`), []string{
			"id: required", "version: required", "testName: required", "url: required", "startTime: required",
			"viewport: required", "userAgent: required", "actions: required"}},
		{"wrong types", []byte(`{"id":1,"version":true,"testName":[],"url":{},"startTime":null,"viewport":[1,2],
			"windowSize":{"width":"1"},"userAgent":0,"actions":{},"variables":"x"}`), []string{
			"id: must be a string", "version: must be a string", "testName: must be a string", "url: must be a string",
			"startTime: required", "viewport: must be an object", "windowSize.width: must be a number",
			"userAgent: must be a string", "actions: must be an array", "variables: must be an array"}},
		{"url schemes", []byte(strings.Replace(string(withActions("")), "https://example.com/", "javascript:alert(1)", 1)),
			[]string{"url: must be an absolute URL (http, https, file, about:blank)"}},
		{"http without host", []byte(strings.Replace(string(withActions("")), "https://example.com/", "http:///x", 1)),
			[]string{"url: must be an absolute URL (http, https, file, about:blank)"}},
		{"number out of range", withActions(`{"id":"a","type":"x","timestamp":1e400,"url":""}`),
			[]string{"actions[0].timestamp: must be a number within range"}},
		{"unknown type is fine", withActions(`{"id":"a","type":"dialog","timestamp":1,"url":""}`), nil},
		{"click with selectors only", withActions(`{"id":"a","type":"click","timestamp":1,"url":"","selectors":[{"strategy":"id","value":"b"}]}`), nil},
		{"click with empty selectors", withActions(`{"id":"a","type":"click","timestamp":1,"url":"","selectors":[]}`),
			[]string{"actions[0].selector: required (selector or selectors)"}},
		{"selector wrong type", withActions(`{"id":"a","type":"click","timestamp":1,"url":"","selector":"#b"}`),
			[]string{"actions[0].selector: must be an object"}},
		{"selector fields", withActions(`{"id":"a","type":"hover","timestamp":1,"url":"","selector":{"id":5,"position":{"parent":1,"index":-1},"priority":["id",2]}}`),
			[]string{"actions[0].selector.id: must be a string", "actions[0].selector.position.parent: must be a string",
				"actions[0].selector.position.index: must be a non-negative integer", "actions[0].selector.priority[1]: must be a string"}},
		{"selector with position only", withActions(`{"id":"a","type":"submit","timestamp":1,"url":"","selector":{"position":{"parent":"form","index":0}}}`), nil},
		{"input value wrong type", withActions(`{"id":"a","type":"input","timestamp":1,"url":"","selector":{"id":"b"},"value":5}`),
			[]string{"actions[0].value: must be a string"}},
		{"input empty value ok", withActions(`{"id":"a","type":"input","timestamp":1,"url":"","selector":{"id":"b"},"value":""}`), nil},
		{"select by index", withActions(`{"id":"a","type":"select","timestamp":1,"url":"","selector":{"id":"b"},"selectedIndex":0}`), nil},
		{"select index not integer", withActions(`{"id":"a","type":"select","timestamp":1,"url":"","selector":{"id":"b"},"selectedIndex":1.5}`),
			[]string{"actions[0].selectedIndex: must be an integer within range"}},
		{"navigation falls back to url", withActions(`{"id":"a","type":"navigation","timestamp":1,"url":"https://example.com/b"}`), nil},
		{"scroll element selector", withActions(`{"id":"a","type":"scroll","timestamp":1,"url":"","element":{"css":"#c"}}`), nil},
		{"scroll element empty selector", withActions(`{"id":"a","type":"scroll","timestamp":1,"url":"","element":{}}`),
			[]string{"actions[0].element: has no strategy with a value"}},
		{"scroll element missing", withActions(`{"id":"a","type":"scroll","timestamp":1,"url":""}`),
			[]string{"actions[0].element: required"}},
		{"checkpoint", withActions(`{"id":"a","type":"checkpoint","timestamp":1,"url":"","checkType":"pageTitle","auto":"yes"}`),
			[]string{"actions[0].auto: must be a boolean"}},
		{"modal event", withActions(`{"id":"a","type":"modal-lifecycle","timestamp":1,"url":"","event":"modal-opened"}`), nil},
		{"action base fields", withActions(`{"type":"x","timestamp":"1","url":5,"completedAt":"2","isOptional":1,"coordinates":{"x":1}}`),
			[]string{"actions[0].id: required", "actions[0].timestamp: must be a number", "actions[0].url: must be a string",
				"actions[0].completedAt: must be a number", "actions[0].isOptional: must be a boolean", "actions[0].coordinates.y: required"}},
		{"selectors entry value types", withActions(`{"id":"a","type":"click","timestamp":1,"url":"","selectors":[{"strategy":"id","value":true},"x",{"strategy":"position","value":{"parent":"ul","index":1}},{"strategy":"css","value":7}]}`),
			[]string{"actions[0].selectors[0].value: must be a string, number or object", "actions[0].selectors[1]: must be an object"}},
		{"duplicate keys: the last one counts", withActions(`{"id":"a","type":"x","timestamp":"0","timestamp":0,"url":""}`), nil},
		{"duplicate keys: the last one is checked", withActions(`{"id":"a","type":"x","timestamp":0,"timestamp":"0","url":""}`),
			[]string{"actions[0].timestamp: must be a number"}},
		{"nulls are absent", withActions(`{"id":"a","type":"click","timestamp":1,"url":"","selector":{"id":"b","css":null},"completedAt":null,"button":null}`), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(tt.input)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if r == nil {
					t.Fatal("nil recording")
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want *ValidationError", err, err)
			}
			if r != nil {
				t.Error("recording returned with an error")
			}
			if got := problemStrings(err); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
