package http

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/recording"
)

// Limits of request fields.
const (
	defaultPageLimit  = 20
	maxPageLimit      = 100
	maxPage           = 1_000_000
	maxNameLen        = 255
	maxDescriptionLen = 10_000
	maxTags           = 20
	maxTagLen         = 50
	maxSearchLen      = 200
	maxVariables      = 200
	maxVariableLen    = 10_000
	maxCIMetadata     = 64 << 10
	maxIdempotencyKey = 255
	maxTokenNameLen   = 100
)

// Enumerations of run fields.
func allBrowsers() []string     { return []string{"chromium", "firefox", "webkit"} }
func runStatuses() []string     { return []string{"queued", "running", "passed", "failed", "cancelled"} }
func triggers() []string        { return []string{"manual", "api", "schedule", "ci"} }
func screenshotModes() []string { return persistence.ScreenshotModes() }
func timingModes() []string     { return persistence.TimingModes() }
func isolations() []string      { return persistence.Isolations() }
func sortOrders() []string      { return []string{"asc", "desc"} }

// optionKeys are the members `options` may have.
func optionKeys() []string {
	return []string{"browser", "headless", "timeout", "video", "screenshot", "screenshotMode", "timingEnabled",
		"timingMode", "speedMultiplier", "maxActionDelay", "continueOnError", "assertAutoCheckpoints", "isolation"}
}

// createRunRequest is a valid body of POST /api/v1/runs.
type createRunRequest struct {
	RecordingID uuid.UUID
	Options     persistence.RunOptions
	Variables   map[string]string
	TriggeredBy string
	CIMetadata  json.RawMessage
}

// parseCreateRun checks a body of POST /api/v1/runs; browsers are those the
// deployment can run. Every problem is listed.
func parseCreateRun(body []byte, browsers []string) (createRunRequest, problems) {
	var ps problems
	req := createRunRequest{Options: persistence.DefaultRunOptions(), TriggeredBy: "api"}
	f, ok := decodeBody(body, &ps)
	if !ok {
		return req, ps
	}
	f.unknown([]string{"recordingId", "options", "variables", "triggeredBy", "ciMetadata"}, nil)
	req.RecordingID, _ = f.uuidField("recordingId", true)
	if o, ok := f.object("options"); ok {
		parseRunOptions(o, browsers, &req.Options)
	}
	req.Variables = parseVariables(f)
	if t, ok := f.enum("triggeredBy", false, triggers()); ok {
		req.TriggeredBy = t
	}
	if v, ok := f.raw("ciMetadata"); ok {
		if _, isObj := f.object("ciMetadata"); isObj {
			if len(v) > maxCIMetadata {
				ps.add("ciMetadata", "must be at most %d bytes", maxCIMetadata)
			} else if hasNULEscape(v) {
				ps.add("ciMetadata", "must not contain \\u0000")
			} else {
				var buf bytes.Buffer
				if err := json.Compact(&buf, v); err == nil {
					req.CIMetadata = buf.Bytes()
				}
			}
		}
	}
	return req, ps
}

// parseRunOptions checks `options` into o, which holds the defaults.
func parseRunOptions(f fields, browsers []string, o *persistence.RunOptions) {
	f.unknown(optionKeys(), func(k string) string {
		if k == "variables" {
			return "unknown option: variables go at the top level of the body"
		}
		return ""
	})
	if b, ok := f.enum("browser", false, allBrowsers()); ok {
		if slices.Contains(browsers, b) {
			o.Browser = b
		} else {
			f.ps.add(f.path("browser"), "%s is not available on this deployment (available: %s)", b, strings.Join(browsers, ", "))
		}
	}
	if v, ok := f.boolean("headless"); ok {
		o.Headless = v
	}
	if v, ok := f.integer("timeout", persistence.MinTimeoutMs, persistence.MaxTimeoutMs); ok {
		o.Timeout = v
	}
	if v, ok := f.boolean("video"); ok {
		o.Video = v
	}
	if v, ok := f.boolean("screenshot"); ok {
		o.Screenshot = v
	}
	if v, ok := f.enum("screenshotMode", false, screenshotModes()); ok {
		o.ScreenshotMode = v
	}
	if v, ok := f.boolean("timingEnabled"); ok {
		o.TimingEnabled = v
	}
	if v, ok := f.enum("timingMode", false, timingModes()); ok {
		o.TimingMode = v
	}
	if v, ok := f.number("speedMultiplier", persistence.MinSpeedMultiplier, persistence.MaxSpeedMultiplier); ok {
		o.SpeedMultiplier = v
	}
	if v, ok := f.integer("maxActionDelay", 0, persistence.MaxMaxActionDelay); ok {
		o.MaxActionDelay = v
	}
	if v, ok := f.boolean("continueOnError"); ok {
		o.ContinueOnError = v
	}
	if v, ok := f.boolean("assertAutoCheckpoints"); ok {
		o.AssertAutoCheckpoints = v
	}
	if v, ok := f.enum("isolation", false, isolations()); ok {
		o.Isolation = v
	}
}

// parseVariables checks `variables`: names to string values.
func parseVariables(f fields) map[string]string {
	vars := map[string]string{}
	o, ok := f.object("variables")
	if !ok {
		return vars
	}
	if len(o.obj) > maxVariables {
		f.ps.add("variables", "must have at most %d entries", maxVariables)
		return vars
	}
	for _, name := range sortedKeys(o.obj) {
		p := o.path(name)
		if name == "" || textProblem(name, maxNameLen) != "" {
			f.ps.add(p, "variable names must be 1-%d characters of valid text", maxNameLen)
			continue
		}
		var v string
		if err := json.Unmarshal(o.obj[name], &v); err != nil {
			f.ps.add(p, "must be a string")
			continue
		}
		if msg := textProblem(v, maxVariableLen); msg != "" {
			f.ps.add(p, "%s", msg)
			continue
		}
		vars[name] = v
	}
	return vars
}

// checkVariables reports provided variables the recording does not take.
func checkVariables(vars map[string]string, known []string) problems {
	var ps problems
	for _, name := range sortedKeys(vars) {
		if !slices.Contains(known, name) {
			if len(known) == 0 {
				ps.add("variables."+name, "the recording takes no variables")
			} else {
				ps.add(variablePath(name), "not a variable of the recording (it takes: %s)", strings.Join(known, ", "))
			}
		}
	}
	return ps
}

func variablePath(name string) string { return fields{base: "variables"}.path(name) }

// checkIdempotencyKey validates an Idempotency-Key header value.
func checkIdempotencyKey(k string) problems {
	var ps problems
	if k == "" {
		return nil
	}
	if len(k) > maxIdempotencyKey {
		ps.add("Idempotency-Key", "must be at most %d characters", maxIdempotencyKey)
		return ps
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			ps.add("Idempotency-Key", "must be printable ASCII without spaces")
			break
		}
	}
	return ps
}

// pageQuery is the page and limit of a list.
type pageQuery struct {
	Page, Limit int
}

func (p pageQuery) offset() int { return (p.Page - 1) * p.Limit }

// queryValue returns the last value of key in q, and whether it is set.
func queryValue(q url.Values, key string) (string, bool) {
	vs := q[key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func parsePage(q url.Values, ps *problems) pageQuery {
	p := pageQuery{Page: 1, Limit: defaultPageLimit}
	if v, ok := queryValue(q, "page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			ps.add("page", "must be an integer between 1 and %d", maxPage)
		} else {
			p.Page = n
		}
	}
	if v, ok := queryValue(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			ps.add("limit", "must be an integer between 1 and %d", maxPageLimit)
		} else {
			p.Limit = n
		}
	}
	return p
}

// parseSort reads sortBy (one of keys) and sortOrder (asc|desc, default desc).
func parseSort(q url.Values, keys []string, ps *problems) (by string, asc bool) {
	by = keys[0]
	for _, k := range keys {
		if k == "createdAt" {
			by = k
		}
	}
	if v, ok := queryValue(q, "sortBy"); ok {
		if slices.Contains(keys, v) {
			by = v
		} else {
			ps.add("sortBy", "must be one of: %s", strings.Join(keys, ", "))
		}
	}
	if v, ok := queryValue(q, "sortOrder"); ok {
		switch strings.ToLower(v) {
		case "asc":
			asc = true
		case "desc":
		default:
			ps.add("sortOrder", "must be one of: %s", strings.Join(sortOrders(), ", "))
		}
	}
	return by, asc
}

// commaList splits every value of key on commas, trimming and dropping
// empty items and repeats.
func commaList(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, it := range strings.Split(v, ",") {
			it = strings.TrimSpace(it)
			if it != "" && !slices.Contains(out, it) {
				out = append(out, it)
			}
		}
	}
	return out
}

// runListQuery is a valid query of GET /api/v1/runs.
type runListQuery struct {
	pageQuery
	Statuses    []string
	RecordingID *uuid.UUID
	Browser     string
	TriggeredBy string
	SortBy      string
	Asc         bool
	// Cursor continues a list where the page that gave it ended (keyset).
	Cursor *persistence.RunCursor
	// ExactTotal asks for an exact count (total=exact) instead of an
	// estimate past runTotalExactUpTo runs.
	ExactTotal bool
}

// parseRunListQuery checks the query of GET /api/v1/runs. Unknown
// parameters are ignored.
func parseRunListQuery(q url.Values) (runListQuery, problems) {
	var ps problems
	r := runListQuery{pageQuery: parsePage(q, &ps)}
	for _, s := range commaList(q, "status") {
		if slices.Contains(runStatuses(), s) {
			r.Statuses = append(r.Statuses, s)
		} else {
			ps.add("status", "%q is not a status (one of: %s)", s, strings.Join(runStatuses(), ", "))
		}
	}
	if v, ok := queryValue(q, "recordingId"); ok && v != "" {
		if id, err := parseUUID(v); err == nil {
			r.RecordingID = &id
		} else {
			ps.add("recordingId", "must be a UUID")
		}
	}
	if v, ok := queryValue(q, "browser"); ok && v != "" {
		if slices.Contains(allBrowsers(), v) {
			r.Browser = v
		} else {
			ps.add("browser", "must be one of: %s", strings.Join(allBrowsers(), ", "))
		}
	}
	if v, ok := queryValue(q, "triggeredBy"); ok && v != "" {
		if slices.Contains(triggers(), v) {
			r.TriggeredBy = v
		} else {
			ps.add("triggeredBy", "must be one of: %s", strings.Join(triggers(), ", "))
		}
	}
	r.SortBy, r.Asc = parseSort(q, persistence.RunSortKeys(), &ps)
	if v, ok := queryValue(q, "cursor"); ok && v != "" {
		c, err := decodeRunCursor(v)
		switch {
		case err != nil:
			ps.add("cursor", "is not a cursor of this list (use pagination.nextCursor as given)")
		case c.SortBy != r.SortBy && !(c.SortBy == "" && r.SortBy == persistence.RunSortCreatedAt) || c.Asc != r.Asc:
			ps.add("cursor", "was made for another sortBy or sortOrder")
		default:
			r.Cursor = c
		}
	}
	if v, ok := queryValue(q, "total"); ok {
		switch v {
		case "exact":
			r.ExactTotal = true
		case "estimate", "":
		default:
			ps.add("total", "must be exact or estimate")
		}
	}
	return r, ps
}

// maxCursorLen bounds a cursor parameter before it is decoded.
const maxCursorLen = 512

func encodeRunCursor(c *persistence.RunCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeRunCursor(s string) (*persistence.RunCursor, error) {
	if len(s) > maxCursorLen {
		return nil, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	c := new(persistence.RunCursor)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	if c.ID == uuid.Nil || !slices.Contains(persistence.RunSortKeys(), c.SortBy) && c.SortBy != "" {
		return nil, errors.New("not a cursor")
	}
	nullable := c.SortBy == persistence.RunSortStartedAt || c.SortBy == persistence.RunSortCompletedAt
	if c.Value == nil && !nullable {
		return nil, errors.New("not a cursor")
	}
	if c.Value != nil {
		if c.SortBy == persistence.RunSortStatus {
			if !slices.Contains(runStatuses(), *c.Value) {
				return nil, errors.New("not a cursor")
			}
		} else if _, err := time.Parse(time.RFC3339Nano, *c.Value); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// recordingListQuery is a valid query of GET /api/v1/recordings.
type recordingListQuery struct {
	pageQuery
	Search string
	Tags   []string
	SortBy string
	Asc    bool
}

// parseRecordingListQuery checks the query of GET /api/v1/recordings.
func parseRecordingListQuery(q url.Values) (recordingListQuery, problems) {
	var ps problems
	r := recordingListQuery{pageQuery: parsePage(q, &ps)}
	if v, ok := queryValue(q, "search"); ok {
		v = strings.TrimSpace(v)
		if msg := textProblem(v, maxSearchLen); msg != "" {
			ps.add("search", "%s", msg)
		} else {
			r.Search = v
		}
	}
	tags := commaList(q, "tag")
	if len(tags) > maxTags {
		ps.add("tag", "at most %d tags", maxTags)
	} else {
		for _, t := range tags {
			if msg := textProblem(t, maxTagLen); msg != "" {
				ps.add("tag", "%s", msg)
				continue
			}
			r.Tags = append(r.Tags, t)
		}
	}
	r.SortBy, r.Asc = parseSort(q, persistence.RecordingSortKeys(), &ps)
	return r, ps
}

// recordingUpload is a valid body of POST /api/v1/recordings.
type recordingUpload struct {
	Name        string
	Description string
	Tags        []string
	Data        []byte // the recording JSON as uploaded
	Rec         *recording.Recording
}

// wrapperKeys are the members of a wrapped upload.
func wrapperKeys() []string { return []string{"name", "description", "tags", "data"} }

// isWrapped tells a wrapped upload ({"data": <recording>, ...}) from a bare
// recording: a recording has actions and a testName, a wrapper has data.
func isWrapped(obj map[string]json.RawMessage) bool {
	_, hasData := obj["data"]
	_, hasActions := obj["actions"]
	_, hasTestName := obj["testName"]
	return hasData && !hasActions && !hasTestName
}

// parseRecordingUpload checks a body of POST /api/v1/recordings: a
// recording as exported, or one wrapped with name, description and tags.
func parseRecordingUpload(body []byte) (recordingUpload, problems) {
	var ps problems
	var up recordingUpload
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || !isWrapped(top) {
		up.Data = body
		up.Rec = parseRecordingData(body, "", &ps)
		if up.Rec != nil {
			up.Name = strings.TrimSpace(up.Rec.TestName)
			up.Tags = []string{}
			checkDerivedName(up.Name, "testName", &ps)
		}
		return up, ps
	}
	f := fields{obj: top, ps: &ps}
	f.unknown(wrapperKeys(), nil)
	name, hasName := f.str("name", false, maxNameLen)
	if hasName && strings.TrimSpace(name) == "" {
		ps.add("name", "must not be blank")
	}
	up.Description, _ = f.str("description", false, maxDescriptionLen)
	up.Tags, _ = f.stringList("tags", maxTags, maxTagLen)
	if up.Tags == nil {
		up.Tags = []string{}
	}
	data, ok := f.raw("data")
	if !ok {
		ps.add("data", "required")
		return up, ps
	}
	up.Data = data
	up.Rec = parseRecordingData(data, "data", &ps)
	if up.Rec != nil {
		up.Name = strings.TrimSpace(name)
		if up.Name == "" {
			up.Name = strings.TrimSpace(up.Rec.TestName)
			checkDerivedName(up.Name, "data.testName", &ps)
		}
	}
	return up, ps
}

// checkDerivedName checks a name taken from the recording's testName.
func checkDerivedName(name, path string, ps *problems) {
	if name == "" {
		ps.add(path, "must not be blank (it becomes the name; give a name to override)")
		return
	}
	if msg := textProblem(name, maxNameLen); msg != "" {
		ps.add(path, "%s (it becomes the name; give a name to override)", msg)
	}
}

// parseRecordingData validates recording JSON, adding its problems under
// prefix ("" or "data").
func parseRecordingData(data []byte, prefix string, ps *problems) *recording.Recording {
	rec, err := recording.Parse(data)
	if err == nil {
		if hasNULEscape(data) {
			ps.add(prefixed(prefix, rootPath), "must not contain \\u0000: NUL characters cannot be stored")
			return nil
		}
		// A recording the service stores is one the service will run: it
		// may open web pages only (issue 15).
		if bad := recording.CheckURLPolicy(rec); len(bad) > 0 {
			for _, p := range bad {
				ps.add(prefixed(prefix, p.Path), "%s", p.Message)
			}
			return nil
		}
		return rec
	}
	ve, ok := err.(*recording.ValidationError)
	if !ok {
		ps.add(prefixed(prefix, rootPath), "invalid recording")
		return nil
	}
	for _, p := range ve.Problems {
		ps.add(prefixed(prefix, p.Path), "%s", p.Message)
	}
	return nil
}

// hasNULEscape reports whether JSON text holds a \u0000 escape (a NUL
// character), which PostgreSQL cannot store in jsonb or text.
func hasNULEscape(data []byte) bool {
	for i := 0; ; {
		j := bytes.Index(data[i:], []byte(`u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		// An escape when preceded by an odd number of backslashes.
		n := 0
		for k := at - 1; k >= 0 && data[k] == '\\'; k-- {
			n++
		}
		if n%2 == 1 {
			return true
		}
		i = at + 1
	}
}

// prefixed puts a recording path under prefix: "$" becomes the prefix
// itself, "actions[0].id" becomes "data.actions[0].id".
func prefixed(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == rootPath || path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

// recordingUpdate is a valid body of PUT /api/v1/recordings/:id; nil
// members are left as they are.
type recordingUpdate struct {
	Name        *string
	Description *string
	Tags        []string
	HasTags     bool
	Data        []byte
	Rec         *recording.Recording
}

// parseRecordingUpdate checks a body of PUT /api/v1/recordings/:id.
func parseRecordingUpdate(body []byte) (recordingUpdate, problems) {
	var ps problems
	var up recordingUpdate
	f, ok := decodeBody(body, &ps)
	if !ok {
		return up, ps
	}
	f.unknown(wrapperKeys(), nil)
	if len(f.obj) == 0 {
		ps.add(rootPath, "nothing to update: give name, description, tags or data")
	}
	if name, ok := f.str("name", false, maxNameLen); ok {
		name = strings.TrimSpace(name)
		if name == "" {
			ps.add("name", "must not be blank")
		}
		up.Name = &name
	}
	if d, ok := f.str("description", false, maxDescriptionLen); ok {
		up.Description = &d
	}
	if tags, ok := f.stringList("tags", maxTags, maxTagLen); ok {
		up.Tags, up.HasTags = tags, true
	}
	if data, ok := f.raw("data"); ok {
		up.Data = data
		up.Rec = parseRecordingData(data, "data", &ps)
	}
	return up, ps
}

// createTokenRequest is a valid body of POST /api/v1/tokens.
type createTokenRequest struct {
	Name      string
	Scopes    []string // nil = the caller's own scopes
	ExpiresAt *time.Time
}

// parseCreateToken checks a body of POST /api/v1/tokens; now is the clock
// an expiry must lie after.
func parseCreateToken(body []byte, now time.Time) (createTokenRequest, problems) {
	var ps problems
	var req createTokenRequest
	f, ok := decodeBody(body, &ps)
	if !ok {
		return req, ps
	}
	f.unknown([]string{"name", "scopes", "expiresAt"}, nil)
	if name, ok := f.str("name", true, maxTokenNameLen); ok {
		req.Name = strings.TrimSpace(name)
		if req.Name == "" {
			ps.add("name", "must not be blank")
		}
	}
	if scopes, ok := f.stringList("scopes", len(persistence.KnownScopes()), 50); ok {
		for i, s := range scopes {
			if !persistence.IsValidScope(s) {
				ps.add(fmt.Sprintf("scopes[%d]", i), "unknown scope %q (valid: %s)", s, strings.Join(persistence.KnownScopes(), ", "))
			}
		}
		if len(scopes) == 0 {
			ps.add("scopes", "must not be empty (omit it for the caller's scopes)")
		}
		req.Scopes = scopes
	}
	if s, ok := f.str("expiresAt", false, 64); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			ps.add("expiresAt", "must be an RFC 3339 time such as 2026-12-31T00:00:00Z")
		case !t.After(now):
			ps.add("expiresAt", "must be in the future")
		default:
			req.ExpiresAt = &t
		}
	}
	return req, ps
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
