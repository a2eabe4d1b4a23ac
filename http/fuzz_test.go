package http

import (
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/saveaction/runner/persistence"
)

// The fuzz targets check the request parsers, which see every byte a
// client sends: they must never panic, must report problems with a path,
// and what they accept must be within the documented ranges. Their seeds
// run under plain `go test`; `go test -fuzz=FuzzX ./http/` explores.

func seedBodies(f *testing.F, extra ...string) {
	fixture, err := os.ReadFile("testdata/login.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range append([]string{
		"", "{}", "null", "[]", `"x"`, "{", `{"a":1}{}`, `{"recordingId":null}`,
		string(fixture), `{"name":"n","tags":["a"],"data":` + string(fixture) + `}`,
	}, extra...) {
		f.Add([]byte(s))
	}
}

func checkProblems(t *testing.T, ps problems) {
	t.Helper()
	for _, p := range ps {
		if p.Path == "" || p.Message == "" {
			t.Fatalf("problem without path or message: %+v", p)
		}
	}
}

func FuzzParseCreateRun(f *testing.F) {
	seedBodies(f,
		`{"recordingId":"0b0e5f2c-3c1a-4d2e-9f6a-1a2b3c4d5e6f"}`,
		`{"recordingId":"0b0e5f2c-3c1a-4d2e-9f6a-1a2b3c4d5e6f","options":{"browser":"chromium","headless":false,"timeout":1000,"speedMultiplier":0.1,"timingMode":"fast","screenshotMode":"always","maxActionDelay":600000,"isolation":"browser"},"variables":{"A":"b"},"triggeredBy":"ci","ciMetadata":{"x":[1,{"y":null}]}}`,
		`{"recordingId":"x","options":{"timeout":1e400,"speedMultiplier":"2","colour":1},"variables":{"":1},"ciMetadata":"s"}`,
		`{"options":{"timeout":30000.5,"browser":"firefox"},"variables":[]}`,
		`{"recordingId":"0b0e5f2c-3c1a-4d2e-9f6a-1a2b3c4d5e6f","ciMetadata":{"a":"\u0000"}}`,
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ps := parseCreateRun(body, []string{"chromium"})
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		o := req.Options
		if o.Browser != "chromium" || o.Timeout < persistence.MinTimeoutMs || o.Timeout > persistence.MaxTimeoutMs ||
			o.SpeedMultiplier < persistence.MinSpeedMultiplier || o.SpeedMultiplier > persistence.MaxSpeedMultiplier ||
			o.MaxActionDelay < 0 || o.MaxActionDelay > persistence.MaxMaxActionDelay ||
			!slices.Contains(screenshotModes(), o.ScreenshotMode) || !slices.Contains(timingModes(), o.TimingMode) ||
			!slices.Contains(isolations(), o.Isolation) || !slices.Contains(triggers(), req.TriggeredBy) {
			t.Fatalf("accepted out-of-range options: %+v %q", o, req.TriggeredBy)
		}
		for k, v := range req.Variables {
			if k == "" || textProblem(k, maxNameLen) != "" || textProblem(v, maxVariableLen) != "" {
				t.Fatalf("accepted variable %q=%q", k, v)
			}
		}
		if req.CIMetadata != nil && (!json.Valid(req.CIMetadata) || hasNULEscape(req.CIMetadata)) {
			t.Fatalf("accepted ciMetadata %q", req.CIMetadata)
		}
		if _, err := json.Marshal(o); err != nil {
			t.Fatal(err)
		}
	})
}

func checkAcceptedRecording(t *testing.T, name string, tags []string, data []byte) {
	t.Helper()
	if name == "" || textProblem(name, maxNameLen) != "" {
		t.Fatalf("accepted name %q", name)
	}
	if len(tags) > maxTags {
		t.Fatalf("accepted %d tags", len(tags))
	}
	for _, tag := range tags {
		if tag == "" || textProblem(tag, maxTagLen) != "" {
			t.Fatalf("accepted tag %q", tag)
		}
	}
	if !json.Valid(data) || hasNULEscape(data) {
		t.Fatalf("accepted data that cannot be stored: %q", data)
	}
}

func FuzzParseRecordingUpload(f *testing.F) {
	seedBodies(f, `{"data":{}}`, `{"data":null,"name":"x"}`, `{"tags":[1,"",null],"data":"s","x":1}`,
		`{"name":"\u0000","data":{"id":"r"}}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		up, ps := parseRecordingUpload(body)
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		if up.Rec == nil {
			t.Fatal("accepted without a recording")
		}
		checkAcceptedRecording(t, up.Name, up.Tags, up.Data)
		if !utf8.ValidString(up.Description) || len([]rune(up.Description)) > maxDescriptionLen {
			t.Fatalf("accepted description %q", up.Description)
		}
	})
}

func FuzzParseRecordingUpdate(f *testing.F) {
	seedBodies(f, `{"name":"x"}`, `{"tags":[]}`, `{"description":""}`, `{"name":" "}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		up, ps := parseRecordingUpdate(body)
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		if up.Name == nil && up.Description == nil && !up.HasTags && up.Rec == nil {
			t.Fatal("accepted an update of nothing")
		}
		if up.Name != nil && (*up.Name == "" || textProblem(*up.Name, maxNameLen) != "") {
			t.Fatalf("accepted name %q", *up.Name)
		}
		if up.Rec != nil && (!json.Valid(up.Data) || hasNULEscape(up.Data)) {
			t.Fatalf("accepted data %q", up.Data)
		}
	})
}

func FuzzParseCreateToken(f *testing.F) {
	seedBodies(f, `{"name":"ci"}`, `{"name":"ci","scopes":["runs:read"],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"name":"ci","scopes":[],"expiresAt":"yesterday"}`)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ps := parseCreateToken(body, now)
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		if req.Name == "" || (req.ExpiresAt != nil && !req.ExpiresAt.After(now)) || (req.Scopes != nil && len(req.Scopes) == 0) {
			t.Fatalf("accepted %+v", req)
		}
		for _, s := range req.Scopes {
			if !persistence.IsValidScope(s) {
				t.Fatalf("accepted scope %q", s)
			}
		}
	})
}

func seedQueries(f *testing.F, extra ...string) {
	for _, s := range append([]string{
		"", "page=1&limit=20", "page=0", "limit=101", "page=-1&limit=abc", "page=99999999999999999999",
		"sortBy=createdAt&sortOrder=asc", "sortOrder=DESC", "sortBy=%00", "%zz", "a=1&a=2",
	}, extra...) {
		f.Add(s)
	}
}

func checkPage(t *testing.T, p pageQuery) {
	t.Helper()
	if p.Page < 1 || p.Page > maxPage || p.Limit < 1 || p.Limit > maxPageLimit || p.offset() < 0 {
		t.Fatalf("accepted page %+v", p)
	}
}

func FuzzParseRunListQuery(f *testing.F) {
	seedQueries(f, "status=queued,failed&status=passed", "status=,,", "status=done", "recordingId=0b0e5f2c-3c1a-4d2e-9f6a-1a2b3c4d5e6f",
		"recordingId=0b0e5f2c3c1a4d2e9f6a1a2b3c4d5e6f", "browser=webkit&triggeredBy=ci", "sortBy=status")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, ps := parseRunListQuery(q)
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		checkPage(t, r.pageQuery)
		for _, s := range r.Statuses {
			if !slices.Contains(runStatuses(), s) {
				t.Fatalf("accepted status %q", s)
			}
		}
		if !slices.Contains(persistence.RunSortKeys(), r.SortBy) ||
			(r.Browser != "" && !slices.Contains(allBrowsers(), r.Browser)) ||
			(r.TriggeredBy != "" && !slices.Contains(triggers(), r.TriggeredBy)) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseRecordingListQuery(f *testing.F) {
	seedQueries(f, "search=login&tag=a,b&tag=c", "search=%25_%5C", "tag="+string(make([]byte, 60)), "sortBy=actionCount")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, ps := parseRecordingListQuery(q)
		checkProblems(t, ps)
		if len(ps) > 0 {
			return
		}
		checkPage(t, r.pageQuery)
		if textProblem(r.Search, maxSearchLen) != "" || len(r.Tags) > maxTags || !slices.Contains(persistence.RecordingSortKeys(), r.SortBy) {
			t.Fatalf("accepted %+v", r)
		}
		for _, tag := range r.Tags {
			if tag == "" || textProblem(tag, maxTagLen) != "" {
				t.Fatalf("accepted tag %q", tag)
			}
		}
	})
}
