package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// rootPath names the body itself in a problem.
const rootPath = "$"

// problems collects every problem of a request, so one answer lists them all.
type problems []problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// fields reads the members of one JSON object, checking each on its own so
// that a bad member never hides the problems of the others.
type fields struct {
	obj  map[string]json.RawMessage
	base string
	ps   *problems
}

// decodeBody reads a request body that must be one JSON object.
func decodeBody(body []byte, ps *problems) (fields, bool) {
	if len(bytes.TrimSpace(body)) == 0 {
		ps.add(rootPath, "a JSON object is required")
		return fields{}, false
	}
	return objectAt(body, "", rootPath, ps)
}

// objectAt reads raw as a JSON object whose members get paths under base;
// at is the path of the object itself, for its own problems.
func objectAt(raw []byte, base, at string, ps *problems) (fields, bool) {
	f := fields{base: base, ps: ps}
	var probe any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&probe); err != nil {
		ps.add(at, "invalid JSON: %s", jsonErrText(err))
		return f, false
	}
	if dec.More() {
		ps.add(at, "invalid JSON: data after the value")
		return f, false
	}
	if _, ok := probe.(map[string]any); !ok {
		ps.add(at, "must be a JSON object")
		return f, false
	}
	if err := json.Unmarshal(raw, &f.obj); err != nil {
		ps.add(at, "invalid JSON: %s", jsonErrText(err))
		return f, false
	}
	return f, true
}

// jsonErrText describes a decoding error without Go type names.
func jsonErrText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	msg := err.Error()
	if strings.Contains(msg, "unexpected EOF") {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(msg, "json: ")
}

// path names member key: base.key, or base["key"] when the key is empty or
// would read as path syntax.
func (f fields) path(key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\" \t\n") || !utf8.ValidString(key) {
		return f.base + "[" + strconv.Quote(key) + "]"
	}
	if f.base == "" {
		return key
	}
	return f.base + "." + key
}

// raw returns the member key unless it is absent or null.
func (f fields) raw(key string) (json.RawMessage, bool) {
	v, ok := f.obj[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, false
	}
	return v, true
}

// unknown reports every member not in allowed, in name order.
func (f fields) unknown(allowed []string, hint func(key string) string) {
	var keys []string
	for k := range f.obj {
		if !slices.Contains(allowed, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg := "unknown field (allowed: " + strings.Join(allowed, ", ") + ")"
		if hint != nil {
			if h := hint(k); h != "" {
				msg = h
			}
		}
		f.ps.add(f.path(k), "%s", msg)
	}
}

// str reads a string member of at most maxLen characters. required makes
// absence a problem.
func (f fields) str(key string, required bool, maxLen int) (string, bool) {
	v, ok := f.raw(key)
	if !ok {
		if required {
			f.ps.add(f.path(key), "required")
		}
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		f.ps.add(f.path(key), "must be a string")
		return "", false
	}
	if msg := textProblem(s, maxLen); msg != "" {
		f.ps.add(f.path(key), "%s", msg)
		return "", false
	}
	return s, true
}

// textProblem says what makes s unfit for a text column, or "".
func textProblem(s string, maxLen int) string {
	switch {
	case strings.ContainsRune(s, 0):
		return "must not contain NUL characters"
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case maxLen > 0 && utf8.RuneCountInString(s) > maxLen:
		return fmt.Sprintf("must be at most %d characters", maxLen)
	}
	return ""
}

func (f fields) boolean(key string) (bool, bool) {
	v, ok := f.raw(key)
	if !ok {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		f.ps.add(f.path(key), "must be true or false")
		return false, false
	}
	return b, true
}

// number reads a number member within [lo, hi].
func (f fields) number(key string, lo, hi float64) (float64, bool) {
	v, ok := f.raw(key)
	if !ok {
		return 0, false
	}
	var n float64
	if err := json.Unmarshal(v, &n); err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		f.ps.add(f.path(key), "must be a number")
		return 0, false
	}
	if n < lo || n > hi {
		f.ps.add(f.path(key), "must be between %s and %s", fmtNum(lo), fmtNum(hi))
		return 0, false
	}
	return n, true
}

// integer reads a whole-number member within [lo, hi].
func (f fields) integer(key string, lo, hi int) (int, bool) {
	v, ok := f.raw(key)
	if !ok {
		return 0, false
	}
	var n float64
	if err := json.Unmarshal(v, &n); err != nil {
		f.ps.add(f.path(key), "must be an integer")
		return 0, false
	}
	if n != math.Trunc(n) {
		f.ps.add(f.path(key), "must be an integer")
		return 0, false
	}
	if n < float64(lo) || n > float64(hi) {
		f.ps.add(f.path(key), "must be between %d and %d", lo, hi)
		return 0, false
	}
	return int(n), true
}

// enum reads a string member that must be one of allowed.
func (f fields) enum(key string, required bool, allowed []string) (string, bool) {
	s, ok := f.str(key, required, 0)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		f.ps.add(f.path(key), "must be one of: %s", strings.Join(allowed, ", "))
		return "", false
	}
	return s, true
}

// uuidField reads a member holding a UUID.
func (f fields) uuidField(key string, required bool) (uuid.UUID, bool) {
	s, ok := f.str(key, required, 0)
	if !ok {
		return uuid.Nil, false
	}
	id, err := parseUUID(s)
	if err != nil {
		f.ps.add(f.path(key), "must be a UUID")
		return uuid.Nil, false
	}
	return id, true
}

// parseUUID accepts only the canonical 36-character form, so that one
// resource has one spelling.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, fmt.Errorf("invalid UUID length %d", len(s))
	}
	return uuid.Parse(s)
}

// stringList reads an array of strings, each of at most maxLen characters
// and not blank, at most maxItems of them; repeats are dropped.
func (f fields) stringList(key string, maxItems, maxLen int) ([]string, bool) {
	v, ok := f.raw(key)
	if !ok {
		return nil, false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		f.ps.add(f.path(key), "must be an array of strings")
		return nil, false
	}
	if len(items) > maxItems {
		f.ps.add(f.path(key), "must have at most %d items", maxItems)
		return nil, false
	}
	out := make([]string, 0, len(items))
	good := true
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", f.path(key), i)
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			f.ps.add(p, "must be a string")
			good = false
			continue
		}
		s = strings.TrimSpace(s)
		if s == "" {
			f.ps.add(p, "must not be blank")
			good = false
			continue
		}
		if msg := textProblem(s, maxLen); msg != "" {
			f.ps.add(p, "%s", msg)
			good = false
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, good
}

// object reads a member that must be a JSON object, for nested checks.
func (f fields) object(key string) (fields, bool) {
	v, ok := f.raw(key)
	if !ok {
		return fields{}, false
	}
	return objectAt(v, f.path(key), f.path(key), f.ps)
}

func fmtNum(n float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", n), "0"), ".")
}
