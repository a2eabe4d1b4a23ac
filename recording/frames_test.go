package recording

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// frameDoc is a recording whose one click carries the given frame fields.
func frameDoc(fields string) []byte {
	return []byte(`{"id":"rec_1","version":"1.0.0","testName":"t","url":"http://127.0.0.1/","startTime":"x",
	"viewport":{"width":800,"height":600},"userAgent":"ua","actions":[{"id":"act_001","type":"click","timestamp":1,
	"url":"http://127.0.0.1/","selector":{"id":"b"}` + fields + `}]}`)
}

func TestActionFrame(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		fields string
		want   FrameRef
		main   bool
	}{
		{"none", ``, FrameRef{}, true},
		{"main frame id", `,"frameId":0`, FrameRef{}, true},
		{"main frame id as string", `,"frameId":"0"`, FrameRef{}, true},
		{"one selector", `,"frameSelector":"#pay"`, FrameRef{Selectors: []string{"#pay"}, Recorded: true}, false},
		{"nested, outermost first", `,"frameSelector":["#outer", " iframe.inner ",""]`,
			FrameRef{Selectors: []string{"#outer", "iframe.inner"}, Recorded: true}, false},
		{"url", `,"frameUrl":"http://localhost:1/f.html","frameId":7`, FrameRef{URL: "http://localhost:1/f.html", Recorded: true}, false},
		{"only a frame id", `,"frameId":7`, FrameRef{Recorded: true}, false},
		{"only a frame id string", `,"frameId":"F3A1"`, FrameRef{Recorded: true}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustParse(t, frameDoc(c.fields))
			got := r.Actions[0].Frame()
			if !slices.Equal(got.Selectors, c.want.Selectors) || got.URL != c.want.URL || got.Recorded != c.want.Recorded {
				t.Errorf("Frame() = %+v, want %+v", got, c.want)
			}
			if got.IsMain() != c.main {
				t.Errorf("IsMain() = %v", got.IsMain())
			}
			// The fields survive a round trip as written.
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"frameId", "frameUrl", "frameSelector"} {
				if strings.Contains(c.fields, `"`+k+`"`) != strings.Contains(string(out), `"`+k+`"`) {
					t.Errorf("%s lost or added in %s", k, out)
				}
			}
		})
	}
}

func TestActionFrameInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct{ fields, path string }{
		{`,"frameSelector":5`, "actions[0].frameSelector"},
		{`,"frameSelector":["#a",3]`, "actions[0].frameSelector[1]"},
		{`,"frameUrl":true`, "actions[0].frameUrl"},
		{`,"frameId":{}`, "actions[0].frameId"},
	}
	for _, c := range cases {
		_, err := Parse(frameDoc(c.fields))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != c.path {
			t.Errorf("%s: %v, want one problem at %s", c.fields, err, c.path)
		}
	}
}
