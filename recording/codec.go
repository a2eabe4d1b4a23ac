package recording

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// The model types decode and encode through method-less aliases of
// themselves, so that json.Marshal and json.Unmarshal on the alias do not
// call back into the methods below.
type (
	recordingAlias      Recording
	actionAlias         Action
	selectorAlias       Selector
	selectorEntryAlias  SelectorEntry
	variableAlias       Variable
	selectedOptionAlias SelectedOption
	sizeAlias           Size
	pointAlias          Point
	positionAlias       Position
)

// UnmarshalJSON decodes a recording, matching keys exactly (encoding/json
// alone folds case, and `ID` is not `id` in a recorder export) and keeping
// every key the fields do not reproduce in Extra. It does not validate;
// Parse does.
func (r *Recording) UnmarshalJSON(data []byte) error {
	var a recordingAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode recording: %w", err)
	}
	a.Extra = extra
	*r = Recording(a)
	return nil
}

// MarshalJSON encodes the recording with the keys kept in Extra.
func (r Recording) MarshalJSON() ([]byte, error) {
	a := recordingAlias(r)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes an action like Recording.UnmarshalJSON does. Raw
// JSON fields (context, element, modalElement) are stored compacted.
func (act *Action) UnmarshalJSON(data []byte) error {
	var a actionAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode action: %w", err)
	}
	a.Extra = extra
	for _, raw := range []*json.RawMessage{&a.Context, &a.Element, &a.ModalElement, &a.FrameID, &a.FrameSelector} {
		if *raw, err = compactRaw(*raw); err != nil {
			return fmt.Errorf("decode action: %w", err)
		}
	}
	*act = Action(a)
	return nil
}

// MarshalJSON encodes the action with the keys kept in Extra.
func (act Action) MarshalJSON() ([]byte, error) {
	a := actionAlias(act)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes a legacy selector object, keeping unknown keys
// (validation, fallback, ...) in Extra.
func (s *Selector) UnmarshalJSON(data []byte) error {
	var a selectorAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode selector: %w", err)
	}
	a.Extra = extra
	*s = Selector(a)
	return nil
}

// MarshalJSON encodes the selector with the keys kept in Extra.
func (s Selector) MarshalJSON() ([]byte, error) {
	a := selectorAlias(s)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes one entry of a `selectors` array, keeping unknown
// keys in Extra. Value and Context are stored compacted.
func (e *SelectorEntry) UnmarshalJSON(data []byte) error {
	var a selectorEntryAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode selectors entry: %w", err)
	}
	a.Extra = extra
	for _, raw := range []*json.RawMessage{&a.Value, &a.Context} {
		if *raw, err = compactRaw(*raw); err != nil {
			return fmt.Errorf("decode selectors entry: %w", err)
		}
	}
	*e = SelectorEntry(a)
	return nil
}

// MarshalJSON encodes the entry with the keys kept in Extra.
func (e SelectorEntry) MarshalJSON() ([]byte, error) {
	a := selectorEntryAlias(e)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes a variable declaration, keeping unknown keys in
// Extra.
func (v *Variable) UnmarshalJSON(data []byte) error {
	var a variableAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode variable: %w", err)
	}
	a.Extra = extra
	*v = Variable(a)
	return nil
}

// MarshalJSON encodes the variable with the keys kept in Extra.
func (v Variable) MarshalJSON() ([]byte, error) {
	a := variableAlias(v)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes one chosen option, keeping unknown keys in Extra.
func (o *SelectedOption) UnmarshalJSON(data []byte) error {
	var a selectedOptionAlias
	extra, err := decodeObject(data, &a)
	if err != nil {
		return fmt.Errorf("decode selected option: %w", err)
	}
	a.Extra = extra
	*o = SelectedOption(a)
	return nil
}

// MarshalJSON encodes the option with the keys kept in Extra.
func (o SelectedOption) MarshalJSON() ([]byte, error) {
	a := selectedOptionAlias(o)
	return encodeObject(&a, a.Extra)
}

// UnmarshalJSON decodes a size with exact key matching; other keys are
// dropped so that Size stays a comparable value.
func (s *Size) UnmarshalJSON(data []byte) error {
	var a sizeAlias
	if _, err := decodeObject(data, &a); err != nil {
		return fmt.Errorf("decode size: %w", err)
	}
	*s = Size(a)
	return nil
}

// UnmarshalJSON decodes a point with exact key matching; other keys are
// dropped so that Point stays a comparable value.
func (p *Point) UnmarshalJSON(data []byte) error {
	var a pointAlias
	if _, err := decodeObject(data, &a); err != nil {
		return fmt.Errorf("decode point: %w", err)
	}
	*p = Point(a)
	return nil
}

// UnmarshalJSON decodes a position with exact key matching; other keys are
// dropped so that Position stays a comparable value.
func (p *Position) UnmarshalJSON(data []byte) error {
	var a positionAlias
	if _, err := decodeObject(data, &a); err != nil {
		return fmt.Errorf("decode position: %w", err)
	}
	*p = Position(a)
	return nil
}

// decodeObject decodes the JSON object data into dst, a pointer to a
// method-less struct, and returns the keys of data that encoding dst would
// not write back, compacted: keys no field is tagged with, and keys whose
// value an omitempty field drops (`false`, `""`, `[]`, null).
//
// Each field is decoded from its own key's value. Decoding data into dst in
// one go would differ in two ways that matter: encoding/json matches keys
// case-insensitively (`ID` would fill the field tagged "id"), and with a key
// given twice it decodes both values, failing on a first value that the
// second (the one that counts, as in JavaScript) replaces.
func decodeObject(data []byte, dst any) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	v := reflect.ValueOf(dst).Elem()
	fields := fieldsOf(v.Type())
	var extra map[string]json.RawMessage
	for k, val := range raw {
		f, ok := fields[k]
		if ok {
			fv := v.Field(f.index)
			if err := json.Unmarshal(val, fv.Addr().Interface()); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if !f.omitEmpty || !isEmptyValue(fv) {
				continue
			}
		}
		c, err := compactRaw(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[k] = c
	}
	return extra, nil
}

// encodeObject encodes v, a pointer to a method-less struct, adding the
// keys of extra that v does not write itself. A field always wins over an
// Extra entry of the same name, so setting a field never produces a
// duplicate key.
func encodeObject(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, val := range extra {
		if _, ok := m[k]; !ok {
			m[k] = val
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode extra keys: %w", err)
	}
	return out, nil
}

// compactRaw returns raw in the form encoding/json writes it (compact,
// HTML-escaped), so that a value compares equal after a round trip.
func compactRaw(raw json.RawMessage) (json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// fieldInfo locates a struct field by JSON name.
type fieldInfo struct {
	index     int
	omitEmpty bool
}

// fieldsOf maps the JSON names of the struct type t's fields to the fields.
func fieldsOf(t reflect.Type) map[string]fieldInfo {
	fields := make(map[string]fieldInfo, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		fields[name] = fieldInfo{index: i, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	return fields
}

// isEmptyValue is encoding/json's omitempty rule.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
