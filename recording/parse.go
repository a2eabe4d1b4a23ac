package recording

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SchemaVersion is the recording schema version this package is written
// against. Other versions load with a warning.
const SchemaVersion = "1.0.0"

// rootPath names the document itself in a Problem, for problems that have
// no field to point at (the input is not JSON, or not an object).
const rootPath = "$"

// maxListedProblems bounds how many problems ValidationError.Error spells
// out; Problems always has them all.
const maxListedProblems = 5

// ValidationError is returned by Parse for a recording that breaks the
// rules of the format. It lists every problem found, not just the first.
type ValidationError struct {
	Problems []Problem
}

// Error summarises the problems as `path: message` pairs.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid recording: ")
	if len(e.Problems) == 1 {
		b.WriteString("1 problem: ")
	} else {
		fmt.Fprintf(&b, "%d problems: ", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// String formats the problem as `path: message`.
func (p Problem) String() string {
	return p.Path + ": " + p.Message
}

// Parse decodes and validates a recording. On a recording that breaks a
// rule (including input that is not JSON, or JSON of the wrong shape) it
// returns a *ValidationError listing every problem with its JSON path.
// Unknown keys are kept (see Recording.Extra); unknown action types are not
// an error but are listed in Warnings, as is a version other than 1.0.0.
// Parse does not reorder actions; Normalize does.
func Parse(data []byte) (*Recording, error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var syn *json.SyntaxError
		msg := "invalid JSON"
		switch {
		case errors.As(err, &syn):
			msg = fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
		case err != nil:
			msg = "invalid JSON: " + err.Error()
		}
		return nil, &ValidationError{Problems: []Problem{{Path: rootPath, Message: msg}}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, &ValidationError{Problems: []Problem{{Path: rootPath, Message: "invalid JSON: " + err.Error()}}}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &ValidationError{Problems: []Problem{{Path: rootPath, Message: "must be a JSON object"}}}
	}

	var c checker
	c.recording(obj)
	if len(c.problems) > 0 {
		return nil, &ValidationError{Problems: c.problems}
	}

	var r Recording
	if err := json.Unmarshal(data, &r); err != nil {
		// The checker should have caught anything the typed decode rejects;
		// this keeps the contract (a ValidationError, never a bare error) if
		// the two ever disagree.
		path := rootPath
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			path = ute.Field
		}
		return nil, &ValidationError{Problems: []Problem{{Path: path, Message: "cannot decode: " + err.Error()}}}
	}
	r.Warnings = c.warnings
	return &r, nil
}

// Enumerations from REPLAY.md §1, as functions so that no package-level
// slice can be changed under a caller. An empty string counts as absent.
func buttons() []string     { return []string{"left", "right", "middle"} }
func relativeTos() []string { return []string{"element", "viewport", "document"} }
func modifierKeys() []string {
	return []string{"ctrl", "shift", "alt", "meta"}
}
func simulationTypes() []string { return []string{"type", "setValue"} }
func navigationTriggers() []string {
	return []string{"click", "form-submit", "manual", "redirect", "back", "forward"}
}
func checkTypes() []string {
	return []string{"urlMatch", "urlContains", "elementVisible", "elementText", "containsText", "elementHasValue", "pageTitle", "pageLoad"}
}
func modalEvents() []string { return []string{"modal-opened", "modal-closed", "modal-state-changed"} }

// KnownTypes returns the action types the replay engine executes; others
// load with a warning and are skipped at run time.
func KnownTypes() []string {
	return []string{TypeClick, TypeInput, TypeSelect, TypeNavigation, TypeHover, TypeScroll, TypeKeypress, TypeSubmit, TypeCheckpoint, TypeModalLifecycle}
}

// legacyStrategies returns the string-valued keys of a legacy selector.
func legacyStrategies() []string {
	return []string{"id", "dataTestId", "ariaLabel", "name", "css", "xpath", "xpathAbsolute", "text", "textContains"}
}

// checker walks a document decoded with UseNumber and collects problems in
// document order. Every modelled field is type-checked, so that the typed
// decode which follows cannot fail.
type checker struct {
	problems []Problem
	warnings []string
}

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// get returns obj[key] with JSON null treated as absent: optional fields may
// be null, and a null required field is reported as required.
func get(obj map[string]any, key string) (any, bool) {
	v, ok := obj[key]
	return v, ok && v != nil
}

// str checks that obj[key] is a string; absent is a problem only when
// required.
func (c *checker) str(obj map[string]any, path, key string, required bool) (string, bool) {
	v, ok := get(obj, key)
	if !ok {
		if required {
			c.add(join(path, key), "required")
		}
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		c.add(join(path, key), "must be a string")
		return "", false
	}
	return s, true
}

// nonEmpty checks for a required string with at least one non-space
// character.
func (c *checker) nonEmpty(obj map[string]any, path, key string) (string, bool) {
	s, ok := c.str(obj, path, key, true)
	if ok && strings.TrimSpace(s) == "" {
		c.add(join(path, key), "must not be empty")
		return s, false
	}
	return s, ok
}

// enum checks an optional string against allowed values.
func (c *checker) enum(obj map[string]any, path, key string, required bool, allowed []string) (string, bool) {
	s, ok := c.str(obj, path, key, required)
	if !ok {
		return "", false
	}
	if s == "" {
		if required {
			c.add(join(path, key), "required")
		}
		return "", false
	}
	if !slices.Contains(allowed, s) {
		c.add(join(path, key), "must be one of %s (got %q)", strings.Join(allowed, ", "), s)
		return s, false
	}
	return s, true
}

// num checks that obj[key] is a number a float64 can hold.
func (c *checker) num(obj map[string]any, path, key string, required bool) (float64, bool) {
	v, ok := get(obj, key)
	if !ok {
		if required {
			c.add(join(path, key), "required")
		}
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		c.add(join(path, key), "must be a number")
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		c.add(join(path, key), "must be a number within range")
		return 0, false
	}
	return f, true
}

// nonNegative checks for a number >= 0.
func (c *checker) nonNegative(obj map[string]any, path, key string, required bool) (float64, bool) {
	f, ok := c.num(obj, path, key, required)
	if ok && f < 0 {
		c.add(join(path, key), "must be a non-negative number")
		return f, false
	}
	return f, ok
}

// integer checks that obj[key] is an integer literal that fits an int
// (encoding/json rejects `1.0` for an int field, so this does too).
func (c *checker) integer(obj map[string]any, path, key string, required bool) (int64, bool) {
	v, ok := get(obj, key)
	if !ok {
		if required {
			c.add(join(path, key), "required")
		}
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		c.add(join(path, key), "must be an integer")
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, strconv.IntSize)
	if err != nil {
		c.add(join(path, key), "must be an integer within range")
		return 0, false
	}
	return i, true
}

func (c *checker) boolean(obj map[string]any, path, key string) {
	if v, ok := get(obj, key); ok {
		if _, ok := v.(bool); !ok {
			c.add(join(path, key), "must be a boolean")
		}
	}
}

func (c *checker) object(obj map[string]any, path, key string, required bool) (map[string]any, bool) {
	v, ok := get(obj, key)
	if !ok {
		if required {
			c.add(join(path, key), "required")
		}
		return nil, false
	}
	o, ok := v.(map[string]any)
	if !ok {
		c.add(join(path, key), "must be an object")
		return nil, false
	}
	return o, true
}

func (c *checker) array(obj map[string]any, path, key string, required bool) ([]any, bool) {
	v, ok := get(obj, key)
	if !ok {
		if required {
			c.add(join(path, key), "required")
		}
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		c.add(join(path, key), "must be an array")
		return nil, false
	}
	return a, true
}

// elements calls fn for every element of an array, reporting elements that
// are not objects.
func (c *checker) elements(arr []any, path string, fn func(obj map[string]any, path string)) {
	for i, v := range arr {
		p := index(path, i)
		o, ok := v.(map[string]any)
		if !ok {
			c.add(p, "must be an object")
			continue
		}
		fn(o, p)
	}
}

func (c *checker) recording(obj map[string]any) {
	c.nonEmpty(obj, "", "id")
	if v, ok := c.str(obj, "", "version", true); ok && v != SchemaVersion {
		c.warnings = append(c.warnings, fmt.Sprintf("version: %q is not %s; loading it anyway", v, SchemaVersion))
	}
	c.nonEmpty(obj, "", "testName")
	if u, ok := c.str(obj, "", "url", true); ok && !isStartURL(u) {
		c.add("url", "must be an absolute URL (http, https, file, about:blank)")
	}
	c.str(obj, "", "startTime", true)
	c.str(obj, "", "endTime", false)
	if vp, ok := c.object(obj, "", "viewport", true); ok {
		c.size(vp, "viewport", true)
	}
	for _, key := range []string{"windowSize", "screenSize"} {
		if o, ok := c.object(obj, "", key, false); ok {
			c.size(o, key, false)
		}
	}
	if f, ok := c.num(obj, "", "devicePixelRatio", false); ok && f <= 0 {
		c.add("devicePixelRatio", "must be a positive number")
	}
	c.str(obj, "", "userAgent", true)
	if arr, ok := c.array(obj, "", "actions", true); ok {
		c.elements(arr, "actions", c.action)
	}
	if arr, ok := c.array(obj, "", "variables", false); ok {
		c.elements(arr, "variables", c.variable)
	}
}

// isStartURL reports whether s is a start page the browser can open.
func isStartURL(s string) bool {
	if s == "about:blank" {
		return true
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host != ""
	case "file":
		return u.Host != "" || u.Path != ""
	}
	return false
}

func (c *checker) size(obj map[string]any, path string, positive bool) {
	for _, key := range []string{"width", "height"} {
		f, ok := c.num(obj, path, key, positive)
		if ok && positive && f <= 0 {
			c.add(join(path, key), "must be a positive number")
		}
	}
}

func (c *checker) variable(obj map[string]any, path string) {
	c.nonEmpty(obj, path, "name")
	for _, key := range []string{"fieldType", "selector", "placeholder", "description"} {
		c.str(obj, path, key, false)
	}
}

func (c *checker) action(obj map[string]any, path string) {
	c.nonEmpty(obj, path, "id")
	typ, _ := c.nonEmpty(obj, path, "type")
	c.nonNegative(obj, path, "timestamp", true)
	actionURL, _ := c.str(obj, path, "url", true)
	c.num(obj, path, "completedAt", false)
	c.boolean(obj, path, "isOptional")
	c.boolean(obj, path, "skipIfNotFound")
	c.frame(obj, path)

	hasSelector := false
	if sel, ok := c.object(obj, path, "selector", false); ok {
		hasSelector = c.selector(sel, join(path, "selector"))
	}
	hasSelectors := false
	if arr, ok := c.array(obj, path, "selectors", false); ok {
		hasSelectors = len(arr) > 0
		c.elements(arr, join(path, "selectors"), c.selectorEntry)
	}

	// click
	c.str(obj, path, "tagName", false)
	c.str(obj, path, "text", false)
	if pt, ok := c.object(obj, path, "coordinates", false); ok {
		c.num(pt, join(path, "coordinates"), "x", true)
		c.num(pt, join(path, "coordinates"), "y", true)
	}
	c.enum(obj, path, "coordinatesRelativeTo", false, relativeTos())
	c.enum(obj, path, "button", false, buttons())
	if n, ok := c.integer(obj, path, "clickCount", false); ok && n < 0 {
		c.add(join(path, "clickCount"), "must be a non-negative integer")
	}
	c.modifiers(obj, path)
	c.boolean(obj, path, "checked")

	// input
	_, hasValue := c.str(obj, path, "value", false)
	c.str(obj, path, "inputType", false)
	c.boolean(obj, path, "isSensitive")
	c.enum(obj, path, "simulationType", false, simulationTypes())
	c.nonNegative(obj, path, "typingDelay", false)
	c.str(obj, path, "variableName", false)

	// select
	_, hasSelValue := c.str(obj, path, "selectedValue", false)
	_, hasSelText := c.str(obj, path, "selectedText", false)
	_, hasSelIndex := c.integer(obj, path, "selectedIndex", false)
	if arr, ok := c.array(obj, path, "selectedOptions", false); ok {
		c.elements(arr, join(path, "selectedOptions"), func(o map[string]any, p string) {
			c.str(o, p, "value", false)
			c.str(o, p, "text", false)
			c.integer(o, p, "index", false)
		})
	}

	// navigation
	to, _ := c.str(obj, path, "to", false)
	c.str(obj, path, "from", false)
	c.enum(obj, path, "navigationTrigger", false, navigationTriggers())
	c.str(obj, path, "waitUntil", false)

	// hover (navigation records one too)
	c.nonNegative(obj, path, "duration", false)

	// scroll
	c.num(obj, path, "scrollX", false)
	c.num(obj, path, "scrollY", false)
	hasElement := c.scrollElement(obj, path)

	// keypress
	key, _ := c.str(obj, path, "key", false)
	c.str(obj, path, "code", false)

	// checkpoint
	c.str(obj, path, "expectedUrl", false)
	c.str(obj, path, "expectedValue", false)
	c.boolean(obj, path, "auto")

	// modal-lifecycle
	c.str(obj, path, "modalId", false)
	c.str(obj, path, "modalSelector", false)

	switch typ {
	case TypeClick, TypeInput:
		c.requireLocator(obj, path, hasSelector, hasSelectors)
		if typ == TypeInput && !hasValue {
			if _, present := get(obj, "value"); !present {
				c.add(join(path, "value"), "required")
			}
		}
	case TypeSelect:
		c.requireSelector(obj, path, hasSelector)
		if !hasSelValue && !hasSelText && !hasSelIndex && !c.reported(path, "selectedValue", "selectedText", "selectedIndex") {
			c.add(join(path, "selectedValue"), "required (one of selectedValue, selectedText, selectedIndex)")
		}
	case TypeNavigation:
		if strings.TrimSpace(to) == "" && strings.TrimSpace(actionURL) == "" && !c.reported(path, "to", "url") {
			c.add(join(path, "to"), "required (and no url to fall back to)")
		}
	case TypeHover, TypeSubmit:
		c.requireSelector(obj, path, hasSelector)
	case TypeScroll:
		if !hasElement && !c.reported(path, "element") {
			c.add(join(path, "element"), "required")
		}
	case TypeKeypress:
		if key == "" && !c.reported(path, "key") {
			c.add(join(path, "key"), "required")
		}
	}
	// The discriminators are type-checked whatever the type, and required
	// for theirs.
	c.enum(obj, path, "checkType", typ == TypeCheckpoint, checkTypes())
	c.enum(obj, path, "event", typ == TypeModalLifecycle, modalEvents())

	if typ != "" && !slices.Contains(KnownTypes(), typ) {
		c.warnings = append(c.warnings, fmt.Sprintf("%s: unknown action type %q; it will be skipped", join(path, "type"), typ))
	}
}

// reported says whether a problem was already recorded for one of the keys
// under path, so that a wrong-typed field is not also reported missing.
func (c *checker) reported(path string, keys ...string) bool {
	for _, p := range c.problems {
		for _, k := range keys {
			if p.Path == join(path, k) {
				return true
			}
		}
	}
	return false
}

// requireLocator enforces "selector or selectors" for click and input.
func (c *checker) requireLocator(obj map[string]any, path string, hasSelector, hasSelectors bool) {
	if hasSelector || hasSelectors || c.reported(path, "selector", "selectors") {
		return
	}
	if _, ok := get(obj, "selector"); ok {
		c.add(join(path, "selector"), "has no strategy with a value (and no selectors)")
		return
	}
	c.add(join(path, "selector"), "required (selector or selectors)")
}

// requireSelector enforces a legacy selector for select, hover and submit.
func (c *checker) requireSelector(obj map[string]any, path string, hasSelector bool) {
	if hasSelector || c.reported(path, "selector") {
		return
	}
	if _, ok := get(obj, "selector"); ok {
		c.add(join(path, "selector"), "has no strategy with a value")
		return
	}
	c.add(join(path, "selector"), "required")
}

func (c *checker) modifiers(obj map[string]any, path string) {
	arr, ok := c.array(obj, path, "modifiers", false)
	if !ok {
		return
	}
	for i, v := range arr {
		s, ok := v.(string)
		switch {
		case !ok:
			c.add(index(join(path, "modifiers"), i), "must be a string")
		case !slices.Contains(modifierKeys(), s):
			c.add(index(join(path, "modifiers"), i), "must be one of %s (got %q)", strings.Join(modifierKeys(), ", "), s)
		}
	}
}

// scrollElement checks `element`: the string "window" or a selector object.
func (c *checker) scrollElement(obj map[string]any, path string) bool {
	v, ok := get(obj, "element")
	if !ok {
		return false
	}
	switch e := v.(type) {
	case string:
		if e != "window" {
			c.add(join(path, "element"), `must be "window" or a selector object`)
			return false
		}
		return true
	case map[string]any:
		if !c.selector(e, join(path, "element")) {
			if !c.reported(path, "element") {
				c.add(join(path, "element"), "has no strategy with a value")
			}
			return false
		}
		return true
	}
	c.add(join(path, "element"), `must be "window" or a selector object`)
	return false
}

// selector checks a legacy selector object and reports whether it has at
// least one strategy with a value.
func (c *checker) selector(obj map[string]any, path string) bool {
	has := false
	for _, key := range legacyStrategies() {
		if s, ok := c.str(obj, path, key, false); ok && strings.TrimSpace(s) != "" {
			has = true
		}
	}
	if pos, ok := c.object(obj, path, "position", false); ok {
		has = true
		p := join(path, "position")
		c.str(pos, p, "parent", false)
		if i, ok := c.integer(pos, p, "index", false); ok && i < 0 {
			c.add(join(p, "index"), "must be a non-negative integer")
		}
	}
	if arr, ok := c.array(obj, path, "priority", false); ok {
		for i, v := range arr {
			if _, ok := v.(string); !ok {
				c.add(index(join(path, "priority"), i), "must be a string")
			}
		}
	}
	return has
}

func (c *checker) selectorEntry(obj map[string]any, path string) {
	c.nonEmpty(obj, path, "strategy")
	switch v, ok := get(obj, "value"); {
	case !ok:
		c.add(join(path, "value"), "required")
	default:
		switch v.(type) {
		case string, json.Number, map[string]any:
		default:
			c.add(join(path, "value"), "must be a string, number or object")
		}
	}
	c.num(obj, path, "priority", false)
	if f, ok := c.num(obj, path, "confidence", false); ok && (f < 0 || f > 100) {
		c.add(join(path, "confidence"), "must be between 0 and 100")
	}
}
