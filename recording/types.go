// Package recording parses, validates and normalises SaveAction recordings
// (the JSON files the recorder extension exports). It knows nothing of
// browsers or databases.
package recording

import "encoding/json"

// Recording is one recorded test. Fields the recorder writes that we do not
// model are kept in Extra so that an export round-trips.
type Recording struct {
	ID               string     `json:"id"`
	Version          string     `json:"version"`
	TestName         string     `json:"testName"`
	URL              string     `json:"url"`
	StartTime        string     `json:"startTime"`
	EndTime          string     `json:"endTime,omitempty"`
	Viewport         Size       `json:"viewport"`
	WindowSize       *Size      `json:"windowSize,omitempty"`
	ScreenSize       *Size      `json:"screenSize,omitempty"`
	DevicePixelRatio float64    `json:"devicePixelRatio,omitempty"`
	UserAgent        string     `json:"userAgent"`
	Actions          []Action   `json:"actions"`
	Variables        []Variable `json:"variables,omitempty"`

	// Extra holds top-level keys the fields above do not reproduce (unknown
	// keys, and known ones whose value marshals to nothing, such as
	// `"endTime": ""`), compacted, so that an export round-trips. MarshalJSON
	// writes an Extra key only when the fields do not already write it.
	Extra map[string]json.RawMessage `json:"-"`

	// Warnings lists things Parse accepted but the caller may want to show,
	// each as `path: message` (a version other than 1.0.0, an action type
	// the replay engine does not know). It is not part of the JSON.
	Warnings []string `json:"-"`
}

// Size is a width and height in CSS pixels. Size, Point and Position stay
// comparable values, so unknown keys inside them are dropped, not kept.
type Size struct {
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

// Variable declares a placeholder a run may fill (`${NAME}` in input values).
type Variable struct {
	Name        string `json:"name"`
	FieldType   string `json:"fieldType,omitempty"`
	Selector    string `json:"selector,omitempty"`
	Placeholder string `json:"placeholder,omitempty"`
	Description string `json:"description,omitempty"`

	// Extra holds keys not modelled above, as for Recording.Extra.
	Extra map[string]json.RawMessage `json:"-"`
}

// Action types the replay engine knows.
const (
	TypeClick          = "click"
	TypeInput          = "input"
	TypeSelect         = "select"
	TypeNavigation     = "navigation"
	TypeHover          = "hover"
	TypeScroll         = "scroll"
	TypeKeypress       = "keypress"
	TypeSubmit         = "submit"
	TypeCheckpoint     = "checkpoint"
	TypeModalLifecycle = "modal-lifecycle"
)

// Action is one recorded step. It is a flat union of the fields of every
// action type; Type says which apply. Pointer fields distinguish "absent"
// from a zero value where the semantics differ.
type Action struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Timestamp      float64         `json:"timestamp"`
	CompletedAt    *float64        `json:"completedAt,omitempty"`
	URL            string          `json:"url"`
	IsOptional     bool            `json:"isOptional,omitempty"`
	SkipIfNotFound bool            `json:"skipIfNotFound,omitempty"`
	Context        json.RawMessage `json:"context,omitempty"`
	Selector       *Selector       `json:"selector,omitempty"`
	Selectors      []SelectorEntry `json:"selectors,omitempty"`

	// The frame the element is in, for actions recorded inside an iframe
	// (absent: the page's main frame). FrameSelector is a CSS selector of
	// the iframe element in its parent document, or an array of them for
	// nested frames, outermost first; FrameURL the frame's document URL;
	// FrameID the recorder's own frame id (a string or a number, 0 or "0"
	// meaning the main frame). See Action.Frame.
	FrameID       json.RawMessage `json:"frameId,omitempty"`
	FrameURL      string          `json:"frameUrl,omitempty"`
	FrameSelector json.RawMessage `json:"frameSelector,omitempty"`

	// click
	TagName               string   `json:"tagName,omitempty"`
	Text                  string   `json:"text,omitempty"`
	Coordinates           *Point   `json:"coordinates,omitempty"`
	CoordinatesRelativeTo string   `json:"coordinatesRelativeTo,omitempty"`
	Button                string   `json:"button,omitempty"`
	ClickCount            int      `json:"clickCount,omitempty"`
	Modifiers             []string `json:"modifiers,omitempty"`
	Checked               *bool    `json:"checked,omitempty"`

	// input
	Value          *string `json:"value,omitempty"`
	InputType      string  `json:"inputType,omitempty"`
	IsSensitive    bool    `json:"isSensitive,omitempty"`
	SimulationType string  `json:"simulationType,omitempty"`
	TypingDelay    float64 `json:"typingDelay,omitempty"`
	VariableName   string  `json:"variableName,omitempty"`

	// select
	SelectedValue   *string          `json:"selectedValue,omitempty"`
	SelectedText    *string          `json:"selectedText,omitempty"`
	SelectedIndex   *int             `json:"selectedIndex,omitempty"`
	SelectedOptions []SelectedOption `json:"selectedOptions,omitempty"`

	// navigation
	To                string `json:"to,omitempty"`
	From              string `json:"from,omitempty"`
	NavigationTrigger string `json:"navigationTrigger,omitempty"`
	WaitUntil         string `json:"waitUntil,omitempty"`

	// hover
	Duration float64 `json:"duration,omitempty"`

	// scroll: Element is the string "window" or a selector object.
	ScrollX *float64        `json:"scrollX,omitempty"`
	ScrollY *float64        `json:"scrollY,omitempty"`
	Element json.RawMessage `json:"element,omitempty"`

	// keypress
	Key  string `json:"key,omitempty"`
	Code string `json:"code,omitempty"`

	// checkpoint
	CheckType     string `json:"checkType,omitempty"`
	ExpectedURL   string `json:"expectedUrl,omitempty"`
	ExpectedValue string `json:"expectedValue,omitempty"`
	Auto          bool   `json:"auto,omitempty"`

	// modal-lifecycle
	Event         string          `json:"event,omitempty"`
	ModalID       string          `json:"modalId,omitempty"`
	ModalSelector string          `json:"modalSelector,omitempty"`
	ModalElement  json.RawMessage `json:"modalElement,omitempty"`

	// Extra holds keys not modelled above (alternativeSelectors,
	// elementState, clickIntent, ...), as for Recording.Extra.
	Extra map[string]json.RawMessage `json:"-"`
}

// Point is a coordinate pair.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// SelectedOption is one chosen option of a multi-select.
type SelectedOption struct {
	Value string `json:"value,omitempty"`
	Text  string `json:"text,omitempty"`
	Index *int   `json:"index,omitempty"`

	// Extra holds keys not modelled above (label, ...), as for Recording.Extra.
	Extra map[string]json.RawMessage `json:"-"`
}

// Selector is the legacy selector object: one value per strategy and the
// order to try them in.
type Selector struct {
	ID            string    `json:"id,omitempty"`
	DataTestID    string    `json:"dataTestId,omitempty"`
	AriaLabel     string    `json:"ariaLabel,omitempty"`
	Name          string    `json:"name,omitempty"`
	CSS           string    `json:"css,omitempty"`
	XPath         string    `json:"xpath,omitempty"`
	XPathAbsolute string    `json:"xpathAbsolute,omitempty"`
	Text          string    `json:"text,omitempty"`
	TextContains  string    `json:"textContains,omitempty"`
	Position      *Position `json:"position,omitempty"`
	Priority      []string  `json:"priority,omitempty"`

	// Extra holds keys not modelled above (validation, fallback, ...), as
	// for Recording.Extra.
	Extra map[string]json.RawMessage `json:"-"`
}

// Position locates an element as the index-th child matching parent.
type Position struct {
	Parent string `json:"parent"`
	Index  int    `json:"index"`
}

// SelectorEntry is one entry of the newer `selectors` array.
type SelectorEntry struct {
	Strategy   string          `json:"strategy"`
	Value      json.RawMessage `json:"value"`
	Priority   float64         `json:"priority,omitempty"`
	Confidence float64         `json:"confidence,omitempty"`
	Context    json.RawMessage `json:"context,omitempty"`

	// Extra holds keys not modelled above, as for Recording.Extra.
	Extra map[string]json.RawMessage `json:"-"`
}

// DefaultPriority is the strategy order of a legacy selector with no priority.
var DefaultPriority = []string{"id", "dataTestId", "ariaLabel", "name", "css", "xpath", "xpathAbsolute", "text", "textContains", "position"}

// Problem is one rule a recording breaks, at a JSON path such as
// `actions[3].type`.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}
