package recording

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
)

func TestVariableNames(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		r    *Recording
		want []string
	}{
		{"nil", nil, nil},
		{"none", &Recording{Actions: []Action{{Type: TypeClick}}}, nil},
		{"declared, then variableName, then placeholders, once each", &Recording{
			Variables: []Variable{{Name: "B"}, {Name: ""}, {Name: "A"}, {Name: "B"}},
			Actions: []Action{
				{Type: TypeInput, Value: str("${C} and ${A} and ${D_1}"), VariableName: "E"},
				{Type: TypeInput, Value: str("${not valid} ${1X} $X ${} ${F}${G}"), VariableName: "A"},
			},
		}, []string{"B", "A", "E", "C", "D_1", "F", "G"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.VariableNames(); !slices.Equal(got, tt.want) {
				t.Errorf("VariableNames() = %q, want %q", got, tt.want)
			}
		})
	}

	r := mustParse(t, readFixture(t, "legacy_checkout.json"))
	if got, want := r.VariableNames(), []string{"CUSTOMER_EMAIL", "CARD_CVC"}; !slices.Equal(got, want) {
		t.Errorf("fixture VariableNames() = %q, want %q", got, want)
	}
}

func TestPlaceholderNames(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"plain", nil},
		{"${A}", []string{"A"}},
		{"x${A}y${A}", []string{"A", "A"}},
		{"${${B}}", []string{"B"}},
		{"${unterminated", nil},
		{"$${_x9}", []string{"_x9"}},
		{"${a-b} ${a.b} ${ A }", nil},
	}
	for _, tt := range tests {
		if got := PlaceholderNames(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("PlaceholderNames(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSelectorOrder(t *testing.T) {
	tests := []struct {
		name string
		s    *Selector
		want []string
	}{
		{"nil", nil, nil},
		{"empty selector", &Selector{}, nil},
		{"priority order, valueless keys skipped", &Selector{ID: "a", CSS: "#a", XPath: "//a", Priority: []string{"css", "name", "id"}},
			[]string{"css", "id"}},
		{"keys outside priority are not tried", &Selector{ID: "a", CSS: "#a", Priority: []string{"css"}}, []string{"css"}},
		{"missing priority means default", &Selector{TextContains: "t", Position: &Position{Parent: "ul"}, DataTestID: "d", ID: "a"},
			[]string{"id", "dataTestId", "textContains", "position"}},
		{"empty priority means default", &Selector{Name: "n", XPathAbsolute: "/html", Priority: []string{}}, []string{"name", "xpathAbsolute"}},
		{"unknown and duplicate keys skipped", &Selector{ID: "a", Text: "t", Priority: []string{"testId", "text", "id", "text", "Id"}},
			[]string{"text", "id"}},
		{"blank values are no values", &Selector{ID: "  ", AriaLabel: "Delete item"}, []string{"ariaLabel"}},
		{"all default keys", &Selector{ID: "1", DataTestID: "2", AriaLabel: "3", Name: "4", CSS: "5", XPath: "6", XPathAbsolute: "7", Text: "8", TextContains: "9", Position: &Position{}},
			DefaultPriority},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SelectorOrder(tt.s)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SelectorOrder() = %q, want %q", got, tt.want)
			}
			if len(got) > 0 {
				got[0] = "mutated"
				if DefaultPriority[0] != "id" {
					t.Fatal("SelectorOrder returned DefaultPriority itself")
				}
			}
		})
	}
}

func TestSelectorOrderFixture(t *testing.T) {
	r := Normalize(mustParse(t, readFixture(t, "legacy_checkout.json")))
	want := map[string][]string{
		"act_001": {"id", "css", "xpath", "text"},
		"act_004": {"dataTestId", "id"},
		"act_007": {"css", "position"},
		"act_009": {"id", "css"}, // "priority": []
	}
	for _, a := range r.Actions {
		if w, ok := want[a.ID]; ok {
			if got := SelectorOrder(a.Selector); !slices.Equal(got, w) {
				t.Errorf("%s: SelectorOrder = %q, want %q", a.ID, got, w)
			}
		}
	}
}

func TestStringValue(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{``, ""},
		{`null`, ""},
		{`"hotel-card-41"`, "hotel-card-41"},
		{`"a \"quoted\" \u00e9"`, `a "quoted" é`},
		{`42`, "42"},
		{`-1.5e3`, "-1.5e3"},
		{`true`, "true"},
		{`{ "parent": "ul.results", "index": 3 }`, `{"parent":"ul.results","index":3}`},
		{`["a", 1]`, `["a",1]`},
	}
	for _, tt := range tests {
		e := SelectorEntry{Value: json.RawMessage(tt.raw)}
		if got := e.StringValue(); got != tt.want {
			t.Errorf("StringValue(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}

	r := mustParse(t, readFixture(t, "selectors_modal.json"))
	var got []string
	for _, e := range r.Actions[2].Selectors {
		got = append(got, e.StringValue())
	}
	want := []string{"hotel-card-41", "/hotels/41", "The Savoy Rooms", ".hotel-card__title:has-text('The Savoy Rooms')", `{"parent":"ul.results","index":3}`}
	if !slices.Equal(got, want) {
		t.Errorf("fixture values = %q, want %q", got, want)
	}
}

func TestEstimatedDurationMs(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		actions []Action
		want    int64
	}{
		{"no actions", nil, 0},
		{"one action", []Action{{Timestamp: 1769843858112}}, 0},
		{"one action with completedAt", []Action{{Timestamp: 100, CompletedAt: f(350.4)}}, 250},
		{"completedAt of an earlier action is last", []Action{{ID: "act_1", Timestamp: 0, CompletedAt: f(5000)}, {ID: "act_2", Timestamp: 10}}, 5000},
		{"out of order", []Action{{Timestamp: 300}, {Timestamp: 100}, {Timestamp: 200}}, 200},
		{"completedAt before timestamp", []Action{{Timestamp: 100, CompletedAt: f(0)}}, 0},
		{"huge", []Action{{Timestamp: 0}, {Timestamp: 1e300}}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Recording{Actions: tt.actions}
			if got := r.EstimatedDurationMs(); got != tt.want {
				t.Errorf("EstimatedDurationMs() = %d, want %d", got, tt.want)
			}
		})
	}
	var nilRec *Recording
	if nilRec.EstimatedDurationMs() != 0 {
		t.Error("nil recording has a duration")
	}
}
