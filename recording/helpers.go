package recording

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// EstimatedDurationMs is how long the recording took: from the earliest
// action timestamp to the latest timestamp or completedAt, in whole
// milliseconds, never negative. The span is the same before and after
// Normalize, which only shifts every timestamp by one amount. A recording
// without actions lasts 0.
func (r *Recording) EstimatedDurationMs() int64 {
	if r == nil || len(r.Actions) == 0 {
		return 0
	}
	start, end := r.Actions[0].Timestamp, r.Actions[0].Timestamp
	for _, a := range r.Actions {
		start = min(start, a.Timestamp)
		end = max(end, a.Timestamp)
		if a.CompletedAt != nil {
			end = max(end, *a.CompletedAt)
		}
	}
	d := math.Round(end - start)
	switch {
	case !(d > 0): // also NaN
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(d)
}

// VariableNames returns the names of the variables the recording can take,
// each once, in this order: the declared `variables`, then input actions'
// `variableName`, then `${NAME}` placeholders in input values (in action
// file order). A run may provide any of them.
func (r *Recording) VariableNames() []string {
	if r == nil {
		return nil
	}
	var names []string
	seen := make(map[string]bool)
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, v := range r.Variables {
		add(v.Name)
	}
	for _, a := range r.Actions {
		add(a.VariableName)
	}
	for _, a := range r.Actions {
		if a.Value != nil {
			for _, name := range PlaceholderNames(*a.Value) {
				add(name)
			}
		}
	}
	return names
}

// PlaceholderNames returns the NAMEs of the `${NAME}` placeholders in s, in
// order, repeats included. A NAME is a letter or underscore followed by
// letters, digits and underscores (`${LOGIN_PASSWORD}`); anything else
// between `${` and `}` is not a placeholder and stays literal.
func PlaceholderNames(s string) []string {
	var names []string
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' || s[i+1] != '{' {
			continue
		}
		j := i + 2
		for j < len(s) && isNameByte(s[j], j == i+2) {
			j++
		}
		if j > i+2 && j < len(s) && s[j] == '}' {
			names = append(names, s[i+2:j])
			i = j
		}
	}
	return names
}

func isNameByte(b byte, first bool) bool {
	switch {
	case b == '_', b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z':
		return true
	case b >= '0' && b <= '9':
		return !first
	}
	return false
}

// SelectorOrder returns the legacy selector's strategy keys to try, in
// order: the keys of its priority that have a value (a non-blank string,
// or a position), each once. An empty or missing priority means
// DefaultPriority. Unknown keys in priority are skipped. The result is a
// new slice; SelectorOrder(nil) is nil.
func SelectorOrder(s *Selector) []string {
	if s == nil {
		return nil
	}
	priority := s.Priority
	if len(priority) == 0 {
		priority = DefaultPriority
	}
	var order []string
	for _, key := range priority {
		if s.HasValue(key) && !slices.Contains(order, key) {
			order = append(order, key)
		}
	}
	return order
}

// HasValue reports whether the strategy key (a DefaultPriority name) has a
// usable value: a non-blank string, or for "position" a position. Unknown
// keys have none.
func (s *Selector) HasValue(key string) bool {
	if s == nil {
		return false
	}
	if key == "position" {
		return s.Position != nil
	}
	v, ok := s.StrategyValue(key)
	return ok && strings.TrimSpace(v) != ""
}

// StrategyValue returns the string value of a string strategy key (id,
// dataTestId, ariaLabel, name, css, xpath, xpathAbsolute, text,
// textContains) and whether key is one. Position is not a string; read
// s.Position.
func (s *Selector) StrategyValue(key string) (string, bool) {
	switch key {
	case "id":
		return s.ID, true
	case "dataTestId":
		return s.DataTestID, true
	case "ariaLabel":
		return s.AriaLabel, true
	case "name":
		return s.Name, true
	case "css":
		return s.CSS, true
	case "xpath":
		return s.XPath, true
	case "xpathAbsolute":
		return s.XPathAbsolute, true
	case "text":
		return s.Text, true
	case "textContains":
		return s.TextContains, true
	}
	return "", false
}

// StringValue returns the entry's value as text: a JSON string unquoted, a
// number as written (`42`, `1.5`), true or false, an empty string for a
// missing or null value, and an object or array as compact JSON (such as a
// position strategy's `{"index":3,"parent":"ul.results"}`).
func (e SelectorEntry) StringValue() string {
	raw := bytes.TrimSpace(e.Value)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s
		}
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err == nil {
			return buf.String()
		}
	}
	return string(raw)
}
