package recording

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// absoluteTimestamp is the smallest timestamp taken as epoch milliseconds
// (2001-09-09) rather than milliseconds since the recording started.
const absoluteTimestamp = 1e12

// Normalize returns a copy of r in replay order (REPLAY.md §2), leaving r
// untouched:
//
//   - Actions are ordered by the number in their id (act_012 is 12; the
//     last run of digits counts). Equal numbers are ordered by timestamp,
//     then by file order. Actions whose id has no number are merged in by
//     timestamp: each goes before the first numbered action with a later
//     timestamp.
//   - When the smallest timestamp is absolute (> 1e12 ms), it is subtracted
//     from every timestamp and completedAt, so that the first action is at 0.
//
// No action is dropped, merged or de-duplicated. The copy shares nothing
// with r. Normalize(nil) is nil.
func Normalize(r *Recording) *Recording {
	if r == nil {
		return nil
	}
	out := r.Clone()
	out.Actions = replayOrder(out.Actions)
	if len(out.Actions) == 0 {
		return out
	}
	first := out.Actions[0].Timestamp
	for _, a := range out.Actions {
		first = min(first, a.Timestamp)
	}
	if first > absoluteTimestamp {
		for i := range out.Actions {
			a := &out.Actions[i]
			a.Timestamp -= first
			if a.CompletedAt != nil {
				*a.CompletedAt -= first
			}
		}
	}
	return out
}

// replayOrder sorts actions as Normalize documents, in a new slice.
func replayOrder(actions []Action) []Action {
	type item struct {
		digits string // sequence number without leading zeros; "" = none
		hasNum bool
		pos    int
	}
	numbered, unnumbered := []item{}, []item{}
	for i, a := range actions {
		d, ok := idNumber(a.ID)
		it := item{digits: d, hasNum: ok, pos: i}
		if ok {
			numbered = append(numbered, it)
		} else {
			unnumbered = append(unnumbered, it)
		}
	}
	byTime := func(a, b item) int {
		return cmp.Or(cmp.Compare(actions[a.pos].Timestamp, actions[b.pos].Timestamp), cmp.Compare(a.pos, b.pos))
	}
	slices.SortFunc(numbered, func(a, b item) int {
		// Digit strings without leading zeros compare as numbers by length
		// first, which avoids overflow on absurdly long ids.
		return cmp.Or(cmp.Compare(len(a.digits), len(b.digits)), strings.Compare(a.digits, b.digits), byTime(a, b))
	})
	slices.SortFunc(unnumbered, byTime)

	out := make([]Action, 0, len(actions))
	for len(numbered) > 0 || len(unnumbered) > 0 {
		takeUnnumbered := len(numbered) == 0 ||
			(len(unnumbered) > 0 && actions[unnumbered[0].pos].Timestamp < actions[numbered[0].pos].Timestamp)
		if takeUnnumbered {
			out = append(out, actions[unnumbered[0].pos])
			unnumbered = unnumbered[1:]
		} else {
			out = append(out, actions[numbered[0].pos])
			numbered = numbered[1:]
		}
	}
	return out
}

// idNumber returns the last run of digits in id without leading zeros
// ("0" for all zeros), and whether there was one.
func idNumber(id string) (string, bool) {
	end := len(id)
	for end > 0 && !isDigit(id[end-1]) {
		end--
	}
	if end == 0 {
		return "", false
	}
	start := end
	for start > 0 && isDigit(id[start-1]) {
		start--
	}
	d := strings.TrimLeft(id[start:end], "0")
	if d == "" {
		d = "0"
	}
	return d, true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Clone returns a deep copy of r: changing the copy, down to selectors and
// raw JSON values, never changes r. Clone(nil) is nil.
func (r *Recording) Clone() *Recording {
	if r == nil {
		return nil
	}
	out := *r
	out.WindowSize = clonePtr(r.WindowSize)
	out.ScreenSize = clonePtr(r.ScreenSize)
	if r.Actions != nil {
		out.Actions = make([]Action, len(r.Actions))
		for i := range r.Actions {
			out.Actions[i] = r.Actions[i].Clone()
		}
	}
	if r.Variables != nil {
		out.Variables = make([]Variable, len(r.Variables))
		for i, v := range r.Variables {
			v.Extra = cloneExtra(v.Extra)
			out.Variables[i] = v
		}
	}
	out.Extra = cloneExtra(r.Extra)
	out.Warnings = slices.Clone(r.Warnings)
	return &out
}

// Clone returns a deep copy of the action.
func (a Action) Clone() Action {
	out := a
	out.CompletedAt = clonePtr(a.CompletedAt)
	out.Context = cloneRaw(a.Context)
	out.Selector = a.Selector.Clone()
	if a.Selectors != nil {
		out.Selectors = make([]SelectorEntry, len(a.Selectors))
		for i, e := range a.Selectors {
			e.Value = cloneRaw(e.Value)
			e.Context = cloneRaw(e.Context)
			e.Extra = cloneExtra(e.Extra)
			out.Selectors[i] = e
		}
	}
	out.Coordinates = clonePtr(a.Coordinates)
	out.Modifiers = slices.Clone(a.Modifiers)
	out.Checked = clonePtr(a.Checked)
	out.Value = clonePtr(a.Value)
	out.SelectedValue = clonePtr(a.SelectedValue)
	out.SelectedText = clonePtr(a.SelectedText)
	out.SelectedIndex = clonePtr(a.SelectedIndex)
	if a.SelectedOptions != nil {
		out.SelectedOptions = make([]SelectedOption, len(a.SelectedOptions))
		for i, o := range a.SelectedOptions {
			o.Index = clonePtr(o.Index)
			o.Extra = cloneExtra(o.Extra)
			out.SelectedOptions[i] = o
		}
	}
	out.ScrollX = clonePtr(a.ScrollX)
	out.ScrollY = clonePtr(a.ScrollY)
	out.Element = cloneRaw(a.Element)
	out.ModalElement = cloneRaw(a.ModalElement)
	out.Extra = cloneExtra(a.Extra)
	return out
}

// Clone returns a deep copy of the selector. Clone(nil) is nil.
func (s *Selector) Clone() *Selector {
	if s == nil {
		return nil
	}
	out := *s
	out.Position = clonePtr(s.Position)
	out.Priority = slices.Clone(s.Priority)
	out.Extra = cloneExtra(s.Extra)
	return &out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneRaw(raw json.RawMessage) json.RawMessage {
	return slices.Clone(raw)
}

func cloneExtra(m map[string]json.RawMessage) map[string]json.RawMessage {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = cloneRaw(v)
	}
	return out
}
