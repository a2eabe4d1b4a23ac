package http

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestUploadRecordingRawAndWrapped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	raw := readFixture(t, "login.json")
	r := h.do("POST", "/api/v1/recordings", raw).must(t, 201).data()
	want := map[string]any{
		"originalId": "rec_1769843858000", "name": "Log in and open the dashboard", "url": "https://app.example.com/login",
		"description": "", "actionCount": float64(5), "estimatedDurationMs": float64(7000), "schemaVersion": "1.0.0",
		"dataSizeBytes": float64(len(raw)),
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	if fmt.Sprint(r["variables"]) != "[LOGIN_PASSWORD]" || fmt.Sprint(r["tags"]) != "[]" {
		t.Errorf("variables %v tags %v", r["variables"], r["tags"])
	}
	if _, has := r["data"]; has {
		t.Error("upload answer carries data")
	}
	for _, k := range []string{"id", "createdAt", "updatedAt"} {
		if s, _ := r[k].(string); s == "" {
			t.Errorf("%s missing", k)
		}
	}
	if ts := r["createdAt"].(string); len(ts) != len("2026-01-31T07:17:38.112Z") || !strings.HasSuffix(ts, "Z") {
		t.Errorf("time format %q", ts)
	}

	wrapped := fmt.Sprintf(`{"name":"Login","description":"smoke","tags":["smoke","login","smoke"],"data":%s}`, fixtureWithID(t, "rec_w"))
	w := h.do("POST", "/api/v1/recordings", wrapped).must(t, 201).data()
	if w["name"] != "Login" || w["description"] != "smoke" || fmt.Sprint(w["tags"]) != "[smoke login]" || w["originalId"] != "rec_w" {
		t.Fatalf("wrapped: %v", w)
	}
	// A wrapper without name takes testName.
	w2 := h.do("POST", "/api/v1/recordings", fmt.Sprintf(`{"data":%s}`, fixtureWithID(t, "rec_w2"))).must(t, 201).data()
	if w2["name"] != "Log in and open the dashboard" {
		t.Fatalf("default name: %v", w2["name"])
	}
}

func TestUploadRecordingValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bad := `{"id":"","version":"1.0.0","testName":"x","url":"not a url","startTime":"t",
		"viewport":{"width":-1,"height":10},"userAgent":"ua","actions":[{"id":"act_001","timestamp":1,"url":"u"}]}`
	r := h.do("POST", "/api/v1/recordings", bad).wantError(t, 400, CodeValidation)
	paths := r.problemPaths()
	for _, p := range []string{"id", "url", "viewport.width", "actions[0].type"} {
		if !slices.Contains(paths, p) {
			t.Errorf("problem %s not listed in %v", p, paths)
		}
	}
	// Wrapped: the recording's problems are under data, the wrapper's own too.
	r = h.do("POST", "/api/v1/recordings", `{"name":"","tags":["ok", 3, "`+strings.Repeat("t", 51)+`"],"colour":"red","data":`+bad+`}`).
		wantError(t, 400, CodeValidation)
	paths = r.problemPaths()
	for _, p := range []string{"name", "tags[1]", "tags[2]", "colour", "data.id", "data.viewport.width", "data.actions[0].type"} {
		if !slices.Contains(paths, p) {
			t.Errorf("problem %s not listed in %v", p, paths)
		}
	}
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("t", i)
	}
	tm, _ := json.Marshal(tooMany)
	r = h.do("POST", "/api/v1/recordings", `{"tags":`+string(tm)+`,"data":`+string(readFixture(t, "login.json"))+`}`).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); !slices.Equal(p, []string{"tags"}) {
		t.Errorf("paths %v", p)
	}
	r = h.do("POST", "/api/v1/recordings", `{"data":"nope"}`).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); !slices.Equal(p, []string{"data"}) {
		t.Errorf("paths %v", p)
	}
	h.do("POST", "/api/v1/recordings", `"just a string"`).wantError(t, 400, CodeValidation)
	// \u0000 is valid JSON that PostgreSQL cannot store: a 400, not a 500.
	nul := strings.Replace(string(fixtureWithID(t, "rec_nul")), `"alice"`, `"al\u0000ice"`, 1)
	h.do("POST", "/api/v1/recordings", nul).wantError(t, 400, CodeValidation)
}

func TestDuplicateOriginalID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	first := h.do("POST", "/api/v1/recordings", fixtureWithID(t, "rec_dup")).must(t, 201).data()["id"]
	r := h.do("POST", "/api/v1/recordings", fixtureWithID(t, "rec_dup")).wantError(t, 409, CodeDuplicateOriginalID)
	if d, _ := r.errDetails().(map[string]any); d["recordingId"] != first {
		t.Fatalf("details %v, want recordingId %v", r.errDetails(), first)
	}
	// Another user may have the same recording.
	other := newHarness(t)
	other.do("POST", "/api/v1/recordings", fixtureWithID(t, "rec_dup")).must(t, 201)
	// After a delete the id is free again.
	h.do("DELETE", fmt.Sprint("/api/v1/recordings/", first), nil).must(t, 200)
	h.do("POST", "/api/v1/recordings", fixtureWithID(t, "rec_dup")).must(t, 201)
}

func TestGetExportUpdateDeleteRecording(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.do("POST", "/api/v1/recordings", `{"name":"My Login / test","data":`+string(fixtureWithID(t, "rec_g"))+`}`).must(t, 201).data()["id"].(string)

	g := h.do("GET", "/api/v1/recordings/"+id, nil).must(t, 200).data()
	data, ok := g["data"].(map[string]any)
	if !ok || data["id"] != "rec_g" || len(data["actions"].([]any)) != 5 {
		t.Fatalf("data: %v", g["data"])
	}
	// Unknown keys of the recording are kept.
	if acts := data["actions"].([]any); acts[1].(map[string]any)["elementState"] == nil {
		t.Fatal("unknown keys dropped")
	}

	e := h.do("GET", "/api/v1/recordings/"+id+"/export", nil).must(t, 200)
	if cd := e.Header.Get("Content-Disposition"); cd != `attachment; filename="My-Login--test.json"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if e.Body["id"] != "rec_g" || e.Body["success"] != nil {
		t.Errorf("export is not the bare recording: %s", e.Raw)
	}

	u := h.do("PUT", "/api/v1/recordings/"+id, `{"name":"Renamed","tags":["a"],"description":"d"}`).must(t, 200).data()
	if u["name"] != "Renamed" || fmt.Sprint(u["tags"]) != "[a]" || u["description"] != "d" || u["originalId"] != "rec_g" {
		t.Fatalf("update: %v", u)
	}
	if u["updatedAt"] == g["updatedAt"] && u["updatedAt"] == nil {
		t.Fatal("updatedAt missing")
	}
	// New data replaces what is derived from it.
	var m map[string]any
	_ = json.Unmarshal(fixtureWithID(t, "rec_g2"), &m)
	m["actions"] = m["actions"].([]any)[:2]
	nd, _ := json.Marshal(map[string]any{"data": m})
	u = h.do("PUT", "/api/v1/recordings/"+id, nd).must(t, 200).data()
	if u["originalId"] != "rec_g2" || u["actionCount"] != float64(2) || u["name"] != "Renamed" {
		t.Fatalf("update data: %v", u)
	}
	h.do("PUT", "/api/v1/recordings/"+id, `{}`).wantError(t, 400, CodeValidation)
	r := h.do("PUT", "/api/v1/recordings/"+id, `{"name":"  ","owner":"x","data":{"id":1}}`).wantError(t, 400, CodeValidation)
	for _, p := range []string{"name", "owner", "data.id"} {
		if !slices.Contains(r.problemPaths(), p) {
			t.Errorf("problem %s not in %v", p, r.problemPaths())
		}
	}
	// Changing the recorder id onto another live recording's is a conflict.
	other := h.do("POST", "/api/v1/recordings", fixtureWithID(t, "rec_taken")).must(t, 201).data()["id"]
	c := h.do("PUT", "/api/v1/recordings/"+id, `{"data":`+string(fixtureWithID(t, "rec_taken"))+`}`).wantError(t, 409, CodeDuplicateOriginalID)
	if c.errDetails().(map[string]any)["recordingId"] != other {
		t.Fatalf("details %v", c.errDetails())
	}

	d := h.do("DELETE", "/api/v1/recordings/"+id, nil).must(t, 200).data()
	if d["id"] != id || d["deletedAt"] == nil {
		t.Fatalf("delete: %v", d)
	}
	for _, p := range []string{"", "/export"} {
		h.do("GET", "/api/v1/recordings/"+id+p, nil).wantError(t, 404, CodeRecordingNotFound)
	}
	h.do("PUT", "/api/v1/recordings/"+id, `{"name":"x"}`).wantError(t, 404, CodeRecordingNotFound)
	h.do("DELETE", "/api/v1/recordings/"+id, nil).wantError(t, 404, CodeRecordingNotFound)
	h.do("POST", "/api/v1/runs", map[string]any{"recordingId": id}).wantError(t, 404, CodeRecordingNotFound)
}

func TestForeignRecordingIsNotFound(t *testing.T) {
	t.Parallel()
	owner := newHarness(t)
	id := owner.uploadRecording()
	stranger := newHarness(t)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/api/v1/recordings/" + id, ""},
		{"GET", "/api/v1/recordings/" + id + "/export", ""},
		{"PUT", "/api/v1/recordings/" + id, `{"name":"mine"}`},
		{"DELETE", "/api/v1/recordings/" + id, ""},
	} {
		var body any
		if rq.body != "" {
			body = rq.body
		}
		stranger.do(rq.method, rq.path, body).wantError(t, 404, CodeRecordingNotFound)
	}
	stranger.do("POST", "/api/v1/runs", map[string]any{"recordingId": id}).wantError(t, 404, CodeRecordingNotFound)
	if l := stranger.do("GET", "/api/v1/recordings", nil).must(t, 200).list(); len(l) != 0 {
		t.Fatalf("stranger lists %v", l)
	}
	owner.do("GET", "/api/v1/recordings/"+id, nil).must(t, 200)
}

func TestListRecordings(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	names := []string{"Checkout", "Alpha login", "beta search", "Zeta 100% sale", "Login again"}
	tags := [][]string{{"shop"}, {"auth", "smoke"}, {"search"}, {"shop", "smoke"}, {"auth"}}
	ids := map[string]string{}
	for i, n := range names {
		body, _ := json.Marshal(map[string]any{"name": n, "tags": tags[i], "data": json.RawMessage(fixtureWithID(t, fmt.Sprint("rec_l", i)))})
		ids[n] = h.do("POST", "/api/v1/recordings", body).must(t, 201).data()["id"].(string)
	}
	listNames := func(q string) ([]string, map[string]any) {
		t.Helper()
		r := h.do("GET", "/api/v1/recordings"+q, nil).must(t, 200)
		var out []string
		for _, it := range r.list() {
			m := it.(map[string]any)
			if _, has := m["data"]; has {
				t.Fatal("list items carry data")
			}
			out = append(out, m["name"].(string))
		}
		return out, r.Body["pagination"].(map[string]any)
	}
	got, pg := listNames("")
	if !slices.Equal(got, []string{"Login again", "Zeta 100% sale", "beta search", "Alpha login", "Checkout"}) {
		t.Errorf("default order (newest first): %v", got)
	}
	if pg["total"] != float64(5) || pg["page"] != float64(1) || pg["limit"] != float64(20) || pg["totalPages"] != float64(1) ||
		pg["hasNext"] != false || pg["hasPrevious"] != false {
		t.Errorf("pagination %v", pg)
	}
	if got, _ := listNames("?sortBy=name&sortOrder=asc"); !slices.Equal(got, []string{"Alpha login", "Checkout", "Login again", "Zeta 100% sale", "beta search"}) {
		t.Errorf("by name: %v", got)
	}
	if got, _ := listNames("?search=AGAIN"); !slices.Equal(got, []string{"Login again"}) {
		t.Errorf("search by name: %v", got)
	}
	if got, _ := listNames("?search=rec_l3"); !slices.Equal(got, []string{"Zeta 100% sale"}) {
		t.Errorf("search by recorder id: %v", got)
	}
	if got, _ := listNames("?search=app.example.com"); len(got) != 5 {
		t.Errorf("search by URL: %v", got)
	}
	// LIKE wildcards in the search are literal.
	if got, _ := listNames("?search=100%25"); !slices.Equal(got, []string{"Zeta 100% sale"}) {
		t.Errorf("search with %%: %v", got)
	}
	if got, _ := listNames("?search=e_s"); len(got) != 0 {
		t.Errorf("search _ matched %v", got)
	}
	if got, _ := listNames("?tag=smoke&sortBy=name&sortOrder=asc"); !slices.Equal(got, []string{"Alpha login", "Zeta 100% sale"}) {
		t.Errorf("tag: %v", got)
	}
	if got, _ := listNames("?tag=smoke,shop"); !slices.Equal(got, []string{"Zeta 100% sale"}) {
		t.Errorf("tags: %v", got)
	}
	got, pg = listNames("?limit=2&page=2&sortBy=name&sortOrder=asc")
	if !slices.Equal(got, []string{"Login again", "Zeta 100% sale"}) || pg["totalPages"] != float64(3) || pg["hasNext"] != true || pg["hasPrevious"] != true {
		t.Errorf("page 2: %v %v", got, pg)
	}
	if got, _ := listNames("?sortBy=actionCount"); len(got) != 5 {
		t.Errorf("by actionCount: %v", got)
	}
	h.do("DELETE", "/api/v1/recordings/"+ids["Checkout"], nil).must(t, 200)
	if got, _ := listNames(""); slices.Contains(got, "Checkout") {
		t.Errorf("deleted recording listed: %v", got)
	}
	r := h.do("GET", "/api/v1/recordings?page=0&limit=101&sortBy=size&sortOrder=up", nil).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); !slices.Equal(p, []string{"page", "limit", "sortBy", "sortOrder"}) {
		t.Errorf("paths %v", p)
	}
}
