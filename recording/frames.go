package recording

import (
	"encoding/json"
	"strings"
)

// FrameRef says which frame of the page an action acts in.
type FrameRef struct {
	// Selectors are CSS selectors of the iframe elements from the main
	// document down, outermost first; empty when none was recorded.
	Selectors []string
	// URL is the frame document's URL when recorded.
	URL string
	// Recorded is set when the action says it happened in a frame other
	// than the main one, even with no selector or URL to find it by.
	Recorded bool
}

// IsMain reports whether the action happens in the page's main frame.
func (f FrameRef) IsMain() bool { return !f.Recorded && len(f.Selectors) == 0 && f.URL == "" }

// Frame returns the frame the action was recorded in. frameSelector may be
// a string or an array of strings; blank entries are dropped. A frameId of
// 0, "0", "main" or "" (or none) names the main frame.
func (a *Action) Frame() FrameRef {
	var f FrameRef
	if len(a.FrameSelector) > 0 {
		var one string
		var list []string
		if json.Unmarshal(a.FrameSelector, &one) == nil {
			list = []string{one}
		} else {
			_ = json.Unmarshal(a.FrameSelector, &list)
		}
		for _, s := range list {
			if s = strings.TrimSpace(s); s != "" {
				f.Selectors = append(f.Selectors, s)
			}
		}
	}
	f.URL = strings.TrimSpace(a.FrameURL)
	if len(a.FrameID) > 0 {
		var v any
		if json.Unmarshal(a.FrameID, &v) == nil {
			switch id := v.(type) {
			case float64:
				f.Recorded = id != 0
			case string:
				id = strings.TrimSpace(id)
				f.Recorded = id != "" && id != "0" && id != "main"
			}
		}
	}
	if len(f.Selectors) > 0 || f.URL != "" {
		f.Recorded = true
	}
	return f
}

// frame checks the frame fields of an action.
func (c *checker) frame(obj map[string]any, path string) {
	c.str(obj, path, "frameUrl", false)
	if v, ok := get(obj, "frameId"); ok {
		switch v.(type) {
		case string, json.Number:
		default:
			c.add(join(path, "frameId"), "must be a string or a number")
		}
	}
	v, ok := get(obj, "frameSelector")
	if !ok {
		return
	}
	switch s := v.(type) {
	case string:
	case []any:
		for i, e := range s {
			if _, ok := e.(string); !ok {
				c.add(index(join(path, "frameSelector"), i), "must be a string")
			}
		}
	default:
		c.add(join(path, "frameSelector"), "must be a string or an array of strings")
	}
}
