package recording

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func ids(r *Recording) []string {
	var out []string
	for _, a := range r.Actions {
		out = append(out, a.ID)
	}
	return out
}

func TestNormalizeOrder(t *testing.T) {
	type act struct {
		id string
		ts float64
	}
	tests := []struct {
		name    string
		actions []act
		want    []string
	}{
		{"already ordered", []act{{"act_001", 1}, {"act_002", 2}}, []string{"act_001", "act_002"}},
		{"by id number, not timestamp", []act{{"act_003", 5}, {"act_001", 9}, {"act_002", 1}}, []string{"act_001", "act_002", "act_003"}},
		{"numbers, not strings", []act{{"act_100", 1}, {"act_99", 2}, {"act_0010", 3}}, []string{"act_0010", "act_99", "act_100"}},
		{"ties by timestamp then file order", []act{{"act_1", 30}, {"x_1", 10}, {"act_001", 10}, {"act_2", 0}}, []string{"x_1", "act_001", "act_1", "act_2"}},
		{"last digit run counts", []act{{"rec7_act_2", 1}, {"rec9_act_1", 2}}, []string{"rec9_act_1", "rec7_act_2"}},
		{"huge numbers do not overflow", []act{{"act_99999999999999999999999", 1}, {"act_100000000000000000000000", 0}}, []string{"act_99999999999999999999999", "act_100000000000000000000000"}},
		{"unnumbered merge by timestamp", []act{{"act_002", 20}, {"manual", 15}, {"act_001", 10}, {"end", 99}, {"", 15}}, []string{"act_001", "manual", "", "act_002", "end"}},
		{"no numbers at all", []act{{"b", 2}, {"a", 1}, {"c", 2}}, []string{"a", "b", "c"}},
		{"duplicates kept", []act{{"act_001", 1}, {"act_001", 1}, {"act_002", 2}}, []string{"act_001", "act_001", "act_002"}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Recording{}
			for _, a := range tt.actions {
				r.Actions = append(r.Actions, Action{ID: a.id, Timestamp: a.ts, Type: TypeClick})
			}
			if got := ids(Normalize(r)); !slices.Equal(got, tt.want) {
				t.Errorf("order = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNormalizeFixtures(t *testing.T) {
	tests := []struct {
		file       string
		order      []string
		timestamps []float64
		completed  map[string]float64
		duration   int64
	}{
		{
			file:       "legacy_checkout.json",
			order:      []string{"act_001", "act_002", "act_003", "act_004", "act_005", "act_006", "act_007", "act_008", "act_009", "act_010"},
			timestamps: []float64{0, 318, 2892, 5399, 7008, 8188, 9289, 9898, 9913, 12329},
			completed:  map[string]float64{"act_001": 41, "act_002": 1098, "act_003": 4808, "act_004": 5890, "act_007": 9328},
			duration:   12329,
		},
		{
			file:       "selectors_modal.json",
			order:      []string{"act_001", "act_002", "act_003", "act_004", "act_005", "act_006", "act_007", "act_008", "act_009"},
			timestamps: []float64{0, 2799, 3229, 5776, 7000, 8099, 9299, 13149, 13399},
			completed:  map[string]float64{"act_001": 899, "act_002": 2860, "act_007": 12003},
			duration:   13399,
		},
		{
			file:       "relative_old_version.json",
			order:      []string{"act_001", "act_002", "act_003"},
			timestamps: []float64{450, 1200, 1900},
			completed:  map[string]float64{"act_003": 1950},
			duration:   1500,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readFixture(t, tt.file)
			r := mustParse(t, data)
			n := Normalize(r)
			if got := ids(n); !slices.Equal(got, tt.order) {
				t.Errorf("order = %q, want %q", got, tt.order)
			}
			var ts []float64
			for _, a := range n.Actions {
				ts = append(ts, a.Timestamp)
				want, ok := tt.completed[a.ID]
				switch {
				case ok && (a.CompletedAt == nil || *a.CompletedAt != want):
					t.Errorf("%s completedAt = %v, want %v", a.ID, a.CompletedAt, want)
				case !ok && a.CompletedAt != nil:
					t.Errorf("%s completedAt = %v, want none", a.ID, *a.CompletedAt)
				}
			}
			if !slices.Equal(ts, tt.timestamps) {
				t.Errorf("timestamps = %v, want %v", ts, tt.timestamps)
			}
			if got := r.EstimatedDurationMs(); got != tt.duration {
				t.Errorf("EstimatedDurationMs = %d, want %d", got, tt.duration)
			}
			if got := n.EstimatedDurationMs(); got != tt.duration {
				t.Errorf("EstimatedDurationMs of normalised = %d, want %d", got, tt.duration)
			}
			// Normalising twice changes nothing more.
			if again := Normalize(n); !reflect.DeepEqual(again, n) {
				t.Error("Normalize is not idempotent")
			}
		})
	}
}

func TestNormalizeLeavesInputAlone(t *testing.T) {
	for _, f := range []string{"legacy_checkout.json", "selectors_modal.json"} {
		t.Run(f, func(t *testing.T) {
			data := readFixture(t, f)
			r := mustParse(t, data)
			n := Normalize(r)
			mutate(n)
			if pristine := mustParse(t, data); !reflect.DeepEqual(r, pristine) {
				t.Error("Normalize or a change to its result modified the input")
			}
		})
	}
	if Normalize(nil) != nil {
		t.Error("Normalize(nil) != nil")
	}
}

// mutate changes every reachable value of r in place.
func mutate(r *Recording) {
	for k := range r.Extra {
		if len(r.Extra[k]) > 0 {
			r.Extra[k][0] = ' '
		}
	}
	if r.Extra != nil {
		r.Extra["x"] = json.RawMessage(`1`)
	}
	if r.WindowSize != nil {
		r.WindowSize.Width = -1
	}
	for i := range r.Variables {
		r.Variables[i].Name = "changed"
		if r.Variables[i].Extra != nil {
			r.Variables[i].Extra["y"] = nil
		}
	}
	r.Warnings = append(r.Warnings[:0:0], "changed")
	for i := range r.Actions {
		a := &r.Actions[i]
		a.ID = "changed"
		setF := func(p *float64) {
			if p != nil {
				*p = -7
			}
		}
		setF(a.CompletedAt)
		setF(a.ScrollX)
		setF(a.ScrollY)
		for _, raw := range []json.RawMessage{a.Context, a.Element, a.ModalElement} {
			if len(raw) > 0 {
				raw[0] = ' '
			}
		}
		if a.Selector != nil {
			a.Selector.ID = "changed"
			if a.Selector.Position != nil {
				a.Selector.Position.Index = -1
			}
			if len(a.Selector.Priority) > 0 {
				a.Selector.Priority[0] = "changed"
			}
			for k := range a.Selector.Extra {
				a.Selector.Extra[k][0] = ' '
			}
		}
		for j := range a.Selectors {
			a.Selectors[j].Strategy = "changed"
			a.Selectors[j].Value[0] = ' '
			if len(a.Selectors[j].Context) > 0 {
				a.Selectors[j].Context[0] = ' '
			}
		}
		if a.Coordinates != nil {
			a.Coordinates.X = -1
		}
		if len(a.Modifiers) > 0 {
			a.Modifiers[0] = "changed"
		}
		for _, p := range []*string{a.Value, a.SelectedValue, a.SelectedText} {
			if p != nil {
				*p = "changed"
			}
		}
		if a.Checked != nil {
			*a.Checked = !*a.Checked
		}
		if a.SelectedIndex != nil {
			*a.SelectedIndex = -1
		}
		for j := range a.SelectedOptions {
			a.SelectedOptions[j].Value = "changed"
			if a.SelectedOptions[j].Index != nil {
				*a.SelectedOptions[j].Index = -1
			}
			for k := range a.SelectedOptions[j].Extra {
				a.SelectedOptions[j].Extra[k][0] = ' '
			}
		}
		for k := range a.Extra {
			a.Extra[k][0] = ' '
		}
	}
}
