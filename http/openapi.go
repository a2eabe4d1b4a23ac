package http

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/saveaction/runner/persistence"
)

// openAPI answers GET /api/openapi.json.
func (s *server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Status(fiber.StatusOK).Send(s.openapi)
}

// obj is a JSON object of the document.
type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func arrayOf(items any) obj { return obj{"type": "array", "items": items} }

func str(desc string) obj { return obj{"type": "string", "description": desc} }

func nullable(t, desc string) obj { return obj{"type": []string{t, "null"}, "description": desc} }

func enumOf(desc string, values ...string) obj {
	return obj{"type": "string", "enum": values, "description": desc}
}

func object(required []string, props obj) obj {
	o := obj{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// envelope wraps a data schema in the success envelope.
func envelope(data any) obj {
	return object([]string{"success", "data"}, obj{"success": obj{"type": "boolean", "const": true}, "data": data})
}

func listEnvelope(item any) obj {
	return object([]string{"success", "data", "pagination"}, obj{
		"success": obj{"type": "boolean", "const": true}, "data": arrayOf(item), "pagination": ref("Pagination"),
	})
}

func jsonContent(schema any) obj { return obj{"application/json": obj{"schema": schema}} }

func reply(desc string, schema any) obj {
	return obj{"description": desc, "content": jsonContent(schema)}
}

func errReply(desc string) obj { return reply(desc, ref("Error")) }

// operation describes one method of a path. scope "" means no auth.
func operation(tag, summary, scope string, params []obj, body any, ok map[string]obj) obj {
	op := obj{"tags": []string{tag}, "summary": summary, "responses": obj{}}
	resps := op["responses"].(obj)
	for code, r := range ok {
		resps[code] = r
	}
	if scope != "" {
		op["security"] = []obj{{"bearer": []string{scope}}}
		op["description"] = "Needs scope `" + scope + "`."
		resps["401"] = errReply("UNAUTHORIZED: no, malformed, unknown, revoked or expired token")
		resps["403"] = errReply("INSUFFICIENT_SCOPE")
		resps["429"] = obj{"description": "RATE_LIMITED", "content": jsonContent(ref("Error")),
			"headers": obj{"Retry-After": obj{"schema": obj{"type": "integer"}}}}
		resps["503"] = errReply("DATABASE_UNAVAILABLE or QUEUE_UNAVAILABLE")
		resps["500"] = errReply("INTERNAL_ERROR")
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if body != nil {
		op["requestBody"] = obj{"required": true, "content": jsonContent(body)}
		resps["400"] = errReply("VALIDATION_ERROR: details lists every problem")
		resps["413"] = errReply("PAYLOAD_TOO_LARGE")
		resps["415"] = errReply("UNSUPPORTED_MEDIA_TYPE")
	}
	return op
}

func pathID(desc string) obj {
	return obj{"name": "id", "in": "path", "required": true, "description": desc,
		"schema": obj{"type": "string", "format": "uuid"}}
}

func queryParam(name, desc string, schema obj) obj {
	return obj{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
}

func pageParams() []obj {
	return []obj{
		queryParam("page", "page number, from 1", obj{"type": "integer", "minimum": 1, "default": 1}),
		queryParam("limit", "items per page", obj{"type": "integer", "minimum": 1, "maximum": maxPageLimit, "default": defaultPageLimit}),
	}
}

func sortParams(keys []string) []obj {
	return []obj{
		queryParam("sortBy", "sort key; ties are broken by id", obj{"type": "string", "enum": keys, "default": "createdAt"}),
		queryParam("sortOrder", "sort direction", obj{"type": "string", "enum": sortOrders(), "default": "desc"}),
	}
}

func with(a []obj, b ...obj) []obj { return append(append([]obj{}, a...), b...) }

// openAPIPaths is the paths object: every route of routes(), keyed by the
// OpenAPI spelling of its path ({id} for :id). The test in openapi_test.go
// compares it with the routes the app registers, both ways.
func openAPIPaths() obj {
	bad := errReply("VALIDATION_ERROR")
	runNotFound := errReply("RUN_NOT_FOUND: missing, deleted or someone else's")
	recNotFound := errReply("RECORDING_NOT_FOUND: missing, deleted or someone else's")
	tokNotFound := errReply("TOKEN_NOT_FOUND")
	invalidStatus := errReply("INVALID_RUN_STATUS or VALIDATION_ERROR")
	runID := pathID("run id")
	recID := pathID("recording id")
	tokID := pathID("token id")
	workerName := obj{"name": "name", "in": "path", "required": true, "description": "worker name (WORKER_NAME)", "schema": obj{"type": "string"}}
	deleted := envelope(object([]string{"id", "deletedAt"}, obj{"id": str("id"), "deletedAt": str("time of deletion")}))
	health := func(summary string, schema any) obj {
		return obj{"get": operation("health", summary, "", nil, nil, map[string]obj{"200": reply("OK", envelope(schema))})}
	}
	return obj{
		"/api/health":      health("Version and time", object(nil, obj{"status": enumOf("", "ok"), "version": str(""), "timestamp": str("")})),
		"/api/health/live": health("Liveness: the process serves requests", object(nil, obj{"status": enumOf("", "alive")})),
		"/api/health/ready": obj{"get": operation("health", "Readiness: PostgreSQL and Redis answer", "", nil, nil, map[string]obj{
			"200": reply("ready", envelope(object(nil, obj{"status": enumOf("", "ready")}))),
			"503": errReply("DATABASE_UNAVAILABLE or QUEUE_UNAVAILABLE; details.down names postgres and/or redis"),
		})},
		"/api/health/detailed": health("Every dependency check with latency, version, browsers", object(nil, obj{
			"status": enumOf("", "ok", "degraded"), "version": str(""), "timestamp": str(""),
			"checks": obj{"type": "object", "additionalProperties": ref("Check")}, "browsers": arrayOf(str("")),
		})),
		"/": obj{"get": obj{"tags": []string{"ui"}, "summary": "The run page (HTML): recent runs and each run live; asks for a token once",
			"responses": obj{"200": obj{"description": "the page", "content": obj{"text/html": obj{"schema": str("")}}}}}},
		"/ui/{file}": obj{"get": obj{"tags": []string{"ui"}, "summary": "The run page's script and style sheet",
			"parameters": []obj{{"name": "file", "in": "path", "required": true, "schema": str("app.js or app.css")}},
			"responses":  obj{"200": obj{"description": "the file"}, "404": errReply("NOT_FOUND")}}},
		"/metrics": obj{"get": obj{"tags": []string{"health"}, "summary": "Prometheus metrics (text format)",
			"responses": obj{"200": obj{"description": "metrics", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}}}},
		"/api/openapi.json": obj{"get": obj{"tags": []string{"health"}, "summary": "This document",
			"responses": obj{"200": reply("OpenAPI 3.1 document", obj{"type": "object"})}}},

		"/api/v1/workers": obj{"get": operation("workers", "Live worker nodes of the cluster (without one: the nodes this API node sees)",
			persistence.ScopeWorkersRead, nil, nil, map[string]obj{"200": reply("the fleet", envelope(ref("Fleet")))})},
		"/api/v1/workers/{name}/drain": obj{"post": operation("workers", "Drain a worker: it pulls nothing new, finishes its runs and stays up (again: no-op)",
			persistence.ScopeWorkersManage, []obj{workerName}, nil, map[string]obj{"200": reply("draining", envelope(ref("Worker"))), "404": errReply("WORKER_NOT_FOUND")})},
		"/api/v1/workers/{name}/resume": obj{"post": operation("workers", "Resume a drained worker",
			persistence.ScopeWorkersManage, []obj{workerName}, nil, map[string]obj{"200": reply("active", envelope(ref("Worker"))), "404": errReply("WORKER_NOT_FOUND")})},

		"/api/v1/tokens": obj{
			"post": operation("tokens", "Create a token (shown once)", persistence.ScopeTokensManage, nil, ref("CreateToken"),
				map[string]obj{"201": reply("created", envelope(ref("Token")))}),
			"get": operation("tokens", "List the caller's tokens (no secrets)", persistence.ScopeTokensManage, pageParams(), nil,
				map[string]obj{"200": reply("tokens", listEnvelope(ref("Token"))), "400": bad}),
		},
		"/api/v1/tokens/{id}/revoke": obj{"post": operation("tokens", "Revoke a token", persistence.ScopeTokensManage,
			[]obj{tokID}, nil, map[string]obj{"200": reply("revoked", envelope(ref("Token"))), "400": bad, "404": tokNotFound})},
		"/api/v1/tokens/{id}": obj{"delete": operation("tokens", "Delete a token", persistence.ScopeTokensManage,
			[]obj{tokID}, nil, map[string]obj{"200": reply("deleted", deleted), "400": bad, "404": tokNotFound})},

		"/api/v1/recordings": obj{
			"post": operation("recordings", "Upload a recording (as exported, or wrapped with name, description, tags)",
				persistence.ScopeRecordingsWrite, nil, obj{"oneOf": []any{ref("RecordingData"), ref("RecordingUpload")}},
				map[string]obj{"201": reply("created", envelope(ref("Recording"))),
					"409": errReply("DUPLICATE_ORIGINAL_ID; details.recordingId is the existing recording")}),
			"get": operation("recordings", "List recordings", persistence.ScopeRecordingsRead,
				with(pageParams(), append([]obj{
					queryParam("search", "substring of name, description, recorder id or URL", obj{"type": "string"}),
					queryParam("tag", "tags (comma list or repeated) a recording must all carry", obj{"type": "string"}),
				}, sortParams(persistence.RecordingSortKeys())...)...), nil,
				map[string]obj{"200": reply("recordings", listEnvelope(ref("Recording"))), "400": bad}),
		},
		"/api/v1/recordings/{id}": obj{
			"get": operation("recordings", "Get a recording with its data", persistence.ScopeRecordingsRead, []obj{recID}, nil,
				map[string]obj{"200": reply("recording", envelope(ref("Recording"))), "400": bad, "404": recNotFound}),
			"put": operation("recordings", "Update name, description, tags and/or data", persistence.ScopeRecordingsWrite,
				[]obj{recID}, ref("RecordingUpdate"), map[string]obj{"200": reply("updated", envelope(ref("Recording"))),
					"404": recNotFound, "409": errReply("DUPLICATE_ORIGINAL_ID")}),
			"delete": operation("recordings", "Soft-delete a recording (runs keep their snapshot)", persistence.ScopeRecordingsWrite,
				[]obj{recID}, nil, map[string]obj{"200": reply("deleted", deleted), "400": bad, "404": recNotFound}),
		},
		"/api/v1/recordings/{id}/export": obj{"get": operation("recordings", "Download the recording JSON (Content-Disposition: attachment)",
			persistence.ScopeRecordingsRead, []obj{recID}, nil,
			map[string]obj{"200": reply("the recording as stored", ref("RecordingData")), "400": bad, "404": recNotFound})},

		"/api/v1/runs": obj{
			"post": operation("runs", "Create and queue a run", persistence.ScopeRunsExecute,
				[]obj{{"name": HeaderIdempotencyKey, "in": "header", "required": false, "schema": obj{"type": "string", "maxLength": maxIdempotencyKey},
					"description": "a repeat with the same key within 24 h returns the first run"}},
				ref("CreateRun"), map[string]obj{"201": reply("queued", envelope(ref("RunCreated"))), "404": recNotFound}),
			"get": operation("runs", "List runs", persistence.ScopeRunsRead,
				with(pageParams(), append([]obj{
					queryParam("status", "one status or a comma list", obj{"type": "string"}),
					queryParam("recordingId", "runs of this recording", obj{"type": "string", "format": "uuid"}),
					queryParam("browser", "", obj{"type": "string", "enum": allBrowsers()}),
					queryParam("triggeredBy", "", obj{"type": "string", "enum": triggers()}),
					queryParam("cursor", "continue after the page that gave pagination.nextCursor (same filters and order; page is then ignored); every page costs what the first does", obj{"type": "string"}),
					queryParam("total", fmt.Sprintf("exact: count every matching run; estimate (default): exact up to %d runs, the planner's estimate beyond (pagination.totalExact says which)", runTotalExactUpTo), obj{"type": "string", "enum": []string{"estimate", "exact"}, "default": "estimate"}),
				}, sortParams(persistence.RunSortKeys())...)...), nil,
				map[string]obj{"200": reply("runs", listEnvelope(ref("Run"))), "400": bad}),
		},
		"/api/v1/runs/{id}": obj{
			"get": operation("runs", "Get a run", persistence.ScopeRunsRead, []obj{runID}, nil,
				map[string]obj{"200": reply("run", envelope(ref("Run"))), "400": bad, "404": runNotFound}),
			"delete": operation("runs", "Soft-delete a run (an unfinished one is cancelled first)", persistence.ScopeRunsExecute,
				[]obj{runID}, nil, map[string]obj{"200": reply("deleted", deleted), "400": bad, "404": runNotFound}),
		},
		"/api/v1/runs/{id}/actions": obj{"get": operation("runs", "The run's actions in replay order", persistence.ScopeRunsRead,
			[]obj{runID}, nil, map[string]obj{"200": reply("actions", listEnvelope(ref("RunAction"))), "400": bad, "404": runNotFound})},
		"/api/v1/runs/{id}/events": obj{"get": operation("runs",
			"The run's progress as Server-Sent Events (run.queued, run.started, action.started, action.finished, "+
				"run.retrying, run.finished); each has an increasing id; Last-Event-ID (header) or ?lastEventId= resumes "+
				"after it; a comment every 15 s keeps the stream open; it ends after run.finished",
			persistence.ScopeRunsRead,
			[]obj{runID,
				{"name": "Last-Event-ID", "in": "header", "required": false, "schema": str("resume after this event id")},
				{"name": "lastEventId", "in": "query", "required": false, "schema": str("resume after this event id (when the header cannot be sent)")}},
			nil, map[string]obj{
				"200": {"description": "the event stream", "content": obj{"text/event-stream": obj{"schema": str("id: <id>\nevent: <name>\ndata: <JSON>\n\n per event")}}},
				"400": bad, "404": runNotFound, "503": errReply("QUEUE_UNAVAILABLE: events are not served by this node")})},
		"/api/v1/runs/{id}/live": obj{"get": operation("runs",
			"What a run is doing now: for a running run its owner answers (through the cluster, within about 1 s) with "+
				"source \"owner\"; otherwise, or when the owner does not answer, PostgreSQL does, with source \"database\"",
			persistence.ScopeRunsRead, []obj{runID}, nil,
			map[string]obj{"200": reply("live status", envelope(ref("LiveRun"))), "400": bad, "404": runNotFound})},
		"/api/v1/runs/{id}/cancel": obj{"post": operation("runs", "Cancel a queued or running run", persistence.ScopeRunsExecute,
			[]obj{runID}, nil, map[string]obj{
				"200": reply("cancelled (the final run)", envelope(ref("Run"))),
				"202": reply("cancel requested; the worker has not confirmed within 5 s", envelope(ref("Run"))),
				"400": invalidStatus, "404": runNotFound})},
		"/api/v1/runs/{id}/retry": obj{"post": operation("runs", "Queue a new run with the same recording, options and variables",
			persistence.ScopeRunsExecute, []obj{runID}, nil, map[string]obj{
				"201": reply("queued", envelope(ref("RunCreated"))), "400": invalidStatus,
				"404": errReply("RUN_NOT_FOUND or RECORDING_NOT_FOUND")})},
		"/api/v1/runs/{id}/video": obj{"get": artifactOperation("The run's video (also HEAD); Range requests give 206",
			[]obj{runID}, obj{"video/mp4": obj{"schema": obj{"type": "string", "format": "binary"}},
				"video/webm": obj{"schema": obj{"type": "string", "format": "binary"}}})},
		"/api/v1/runs/{id}/screenshots": obj{"get": operation("artifacts", "The run's screenshots in action order", persistence.ScopeRunsRead,
			[]obj{runID}, nil, map[string]obj{"200": reply("screenshots", listEnvelope(ref("Screenshot"))), "400": bad,
				"404": runNotFound, "410": errReply("ARTIFACT_EXPIRED: removed by retention; details.expiredAt says when")})},
		"/api/v1/runs/{id}/screenshots/{name}": obj{"get": artifactOperation("One screenshot (also HEAD)",
			[]obj{runID, {"name": "name", "in": "path", "required": true, "description": "the screenshot's name", "schema": obj{"type": "string"}}},
			obj{"image/png": obj{"schema": obj{"type": "string", "format": "binary"}}})},
		"/api/v1/runs/{id}/artifact-links": obj{"post": func() obj {
			op := operation("artifacts", "Signed links to the run's artifacts that work without the Authorization header until they expire",
				persistence.ScopeRunsRead, []obj{runID}, nil, map[string]obj{
					"200": reply("links", envelope(ref("ArtifactLinks"))), "400": bad, "404": runNotFound,
					"410": errReply("ARTIFACT_EXPIRED")})
			op["requestBody"] = obj{"required": false, "content": jsonContent(object(nil, obj{
				"expiresIn": obj{"type": "integer", "minimum": 1, "maximum": int(MaxArtifactLinkTTL.Seconds()),
					"default": int(DefaultArtifactLinkTTL.Seconds()), "description": "lifetime of the links in seconds"}}))}
			return op
		}()},
	}
}

// artifactOperation documents a download: bearer token or signed link,
// ranges, validators.
func artifactOperation(summary string, params []obj, content obj) obj {
	params = append(params,
		obj{"name": linkExpiresParam, "in": "query", "required": false, "description": "signed link: expiry (unix seconds)", "schema": obj{"type": "integer"}},
		obj{"name": linkSignatureParam, "in": "query", "required": false, "description": "signed link: signature from POST /runs/{id}/artifact-links; replaces the bearer token", "schema": obj{"type": "string"}},
		obj{"name": "Range", "in": "header", "required": false, "description": "one byte range: bytes=a-b, bytes=a- or bytes=-n", "schema": obj{"type": "string"}},
	)
	headers := obj{"Accept-Ranges": obj{"schema": obj{"type": "string"}}, "ETag": obj{"schema": obj{"type": "string"}},
		"Last-Modified": obj{"schema": obj{"type": "string"}}}
	op := operation("artifacts", summary, persistence.ScopeRunsRead, params, nil, map[string]obj{
		"200": obj{"description": "the whole file", "content": content, "headers": headers},
		"206": obj{"description": "the requested range; Content-Range says which", "content": content, "headers": headers},
		"304": obj{"description": "If-None-Match matched"},
		"400": errReply("VALIDATION_ERROR"),
		"404": errReply("RUN_NOT_FOUND, or ARTIFACT_NOT_FOUND (none recorded, or it could not be stored: details.reason)"),
		"410": errReply("ARTIFACT_EXPIRED: removed by retention; details.expiredAt says when"),
		"416": obj{"description": "RANGE_NOT_SATISFIABLE; Content-Range: bytes */size", "content": jsonContent(ref("Error"))},
	})
	op["description"] = "Needs scope `runs:read`, or a signed link (expires + signature) instead of the token."
	op["responses"].(obj)["503"] = errReply("DATABASE_UNAVAILABLE or ARTIFACT_STORE_UNAVAILABLE")
	return op
}

func openAPISchemas() obj {
	t := func(desc string) obj { return obj{"type": "string", "format": "date-time", "description": desc} }
	nt := func(desc string) obj {
		return obj{"type": []string{"string", "null"}, "format": "date-time", "description": desc}
	}
	intT := obj{"type": "integer"}
	boolT := obj{"type": "boolean"}
	strs := arrayOf(obj{"type": "string"})
	o := persistence.DefaultRunOptions()
	return obj{
		"Error": object([]string{"success", "error"}, obj{
			"success": obj{"type": "boolean", "const": false},
			"error": object([]string{"code", "message", "requestId"}, obj{
				"code": enumOf("error code", CodeValidation, CodeInvalidRunStatus, CodeUnauthorized, CodeInsufficientScope,
					CodeNotFound, CodeMethodNotAllowed, CodeRecordingNotFound, CodeRunNotFound, CodeTokenNotFound,
					CodeDuplicateOriginalID, CodePayloadTooLarge, CodeUnsupportedMedia, CodeRateLimited, CodeInternal,
					CodeQueueUnavailable, CodeDatabaseUnavailable, CodeArtifactNotFound, CodeArtifactExpired,
					CodeRangeNotSatisfiable, CodeArtifactStoreUnavailable),
				"message":   str("human text"),
				"details":   obj{"description": "for VALIDATION_ERROR an array of Problem; otherwise an object"},
				"requestId": str("the X-Request-ID of the request"),
			}),
		}),
		"Problem": object([]string{"path", "message"}, obj{"path": str("e.g. options.timeout, actions[3].type, limit, id"), "message": str("")}),
		"Pagination": object(nil, obj{"page": intT, "limit": intT, "total": intT, "totalPages": intT, "hasNext": boolT, "hasPrevious": boolT,
			"totalExact": obj{"type": "boolean", "description": "run lists: whether total is an exact count or an estimate"},
			"nextCursor": obj{"type": "string", "description": "run lists: the cursor of the next page, absent on the last"}}),
		"Check": object(nil, obj{"status": enumOf("", "up", "down"), "latencyMs": obj{"type": "number"}, "error": str("")}),
		"CreateToken": object([]string{"name"}, obj{
			"name":      obj{"type": "string", "maxLength": maxTokenNameLen},
			"scopes":    obj{"type": "array", "items": obj{"type": "string", "enum": persistence.KnownScopes()}, "description": "default: the caller's scopes; never more than them"},
			"expiresAt": t("optional expiry, in the future"),
		}),
		"Worker": object(nil, obj{
			"name": str("WORKER_NAME"), "address": str("actor address host:port"), "version": str(""),
			"startedAt": t(""), "slots": intT, "busy": intT, "runs": strs,
			"state": enumOf("", "active", "draining"), "lastSeenAt": t("when this node last answered"),
		}),
		"LiveRun": object([]string{"runId", "status", "attempt", "worker", "source", "actionsTotal", "actionsDone"}, obj{
			"runId": str(""), "status": str("the run's status"), "attempt": intT, "worker": str("the worker running (or that ran) the attempt"),
			"source":       enumOf("who answered", LiveFromOwner, LiveFromDatabase),
			"phase":        obj{"type": []string{"string", "null"}, "enum": []any{"starting", "replaying", "finishing", nil}, "description": "owner only"},
			"actionsTotal": intT, "actionsDone": obj{"type": "integer", "description": "actions of the current attempt whose rows are written"},
			"currentAction": obj{"description": "owner only: the action being replayed, null between actions",
				"oneOf": []obj{{"type": "null"}, object([]string{"index", "id", "type"}, obj{"index": intT, "id": str(""), "type": str("")})}},
			"startedAt": nt("when the current attempt started"), "elapsedMs": nullable("integer", "since startedAt (until completion once final)"),
			"note": str("database only: why the owner was not asked or did not answer"),
		}),
		"Fleet": object([]string{"workers", "clustered"}, obj{
			"workers": arrayOf(ref("Worker")), "clustered": boolT, "note": str("set when no cluster is configured"),
		}),
		"Token": object(nil, obj{
			"id": str(""), "name": str(""), "token": str("sa_live_<64 hex>; only in the answer to POST"),
			"scopes": strs, "tokenPrefix": str(""), "tokenSuffix": str("last 4 characters"),
			"expiresAt": nt(""), "lastUsedAt": nt(""), "revokedAt": nt(""), "createdAt": t(""),
		}),
		"RecordingData": obj{"type": "object", "description": "a recording as exported by the SaveAction recorder (REPLAY.md §1)",
			"required": []string{"id", "version", "testName", "url", "startTime", "viewport", "userAgent", "actions"}},
		"RecordingUpload": object([]string{"data"}, obj{
			"name":        obj{"type": "string", "maxLength": maxNameLen, "description": "default: data.testName"},
			"description": obj{"type": "string", "maxLength": maxDescriptionLen},
			"tags":        obj{"type": "array", "items": obj{"type": "string", "maxLength": maxTagLen}, "maxItems": maxTags},
			"data":        ref("RecordingData"),
		}),
		"RecordingUpdate": object(nil, obj{
			"name": obj{"type": "string", "maxLength": maxNameLen}, "description": obj{"type": "string", "maxLength": maxDescriptionLen},
			"tags": obj{"type": "array", "items": obj{"type": "string", "maxLength": maxTagLen}, "maxItems": maxTags},
			"data": ref("RecordingData"),
		}),
		"Recording": object(nil, obj{
			"id": str(""), "originalId": str("the recording's own id"), "name": str(""), "url": str(""),
			"description": str(""), "tags": strs, "actionCount": intT, "estimatedDurationMs": intT,
			"schemaVersion": str(""), "dataSizeBytes": intT, "variables": obj{"type": "array", "items": obj{"type": "string"}, "description": "variable names"},
			"warnings":  obj{"type": "array", "items": obj{"type": "string"}, "description": "on upload and update only"},
			"data":      obj{"description": "on GET of one recording only", "$ref": "#/components/schemas/RecordingData"},
			"createdAt": t(""), "updatedAt": t(""),
		}),
		"RunOptions": obj{"type": "object", "additionalProperties": false, "properties": obj{
			"browser":               obj{"type": "string", "enum": allBrowsers(), "default": o.Browser, "description": "must be one this deployment has"},
			"headless":              obj{"type": "boolean", "default": o.Headless},
			"timeout":               obj{"type": "integer", "minimum": persistence.MinTimeoutMs, "maximum": persistence.MaxTimeoutMs, "default": o.Timeout, "description": "per action, ms"},
			"video":                 obj{"type": "boolean", "default": o.Video},
			"screenshot":            obj{"type": "boolean", "default": o.Screenshot},
			"screenshotMode":        obj{"type": "string", "enum": screenshotModes(), "default": o.ScreenshotMode},
			"timingEnabled":         obj{"type": "boolean", "default": o.TimingEnabled},
			"timingMode":            obj{"type": "string", "enum": timingModes(), "default": o.TimingMode},
			"speedMultiplier":       obj{"type": "number", "minimum": persistence.MinSpeedMultiplier, "maximum": persistence.MaxSpeedMultiplier, "default": o.SpeedMultiplier},
			"maxActionDelay":        obj{"type": "integer", "minimum": 0, "maximum": persistence.MaxMaxActionDelay, "default": o.MaxActionDelay, "description": "cap of each replayed pause, ms"},
			"continueOnError":       obj{"type": "boolean", "default": o.ContinueOnError},
			"assertAutoCheckpoints": obj{"type": "boolean", "default": o.AssertAutoCheckpoints},
			"isolation":             obj{"type": "string", "enum": isolations(), "default": o.Isolation},
		}},
		"CreateRun": obj{"type": "object", "additionalProperties": false, "required": []string{"recordingId"}, "properties": obj{
			"recordingId": obj{"type": "string", "format": "uuid"},
			"options":     ref("RunOptions"),
			"variables":   obj{"type": "object", "additionalProperties": obj{"type": "string"}, "description": "values are secrets: never returned"},
			"triggeredBy": obj{"type": "string", "enum": triggers(), "default": "api"},
			"ciMetadata":  obj{"type": "object"},
		}},
		"RunCreated": object(nil, obj{
			"id": str(""), "recordingId": str(""), "recordingName": str(""), "status": enumOf("", runStatuses()...),
			"browser": str(""), "headless": boolT, "retryOf": str("only on retry"), "createdAt": t(""),
		}),
		"Run": object(nil, obj{
			"id": str(""), "recordingId": str(""), "recordingName": str("snapshot"), "recordingUrl": str("snapshot"),
			"status": enumOf("", runStatuses()...), "browser": str(""), "headless": boolT, "options": ref("RunOptions"),
			"variables":    obj{"type": "array", "items": obj{"type": "string"}, "description": "variable names only"},
			"actionsTotal": intT, "actionsExecuted": intT, "actionsFailed": intT, "actionsSkipped": intT,
			"durationMs": nullable("integer", ""), "startedAt": nt(""), "completedAt": nt(""),
			"errorMessage": nullable("string", ""), "errorActionId": nullable("string", ""), "attempt": intT,
			"workerNode": nullable("string", ""), "triggeredBy": enumOf("", triggers()...), "ciMetadata": obj{"type": []string{"object", "null"}},
			"retryOf": nullable("string", ""), "cancelRequestedAt": nt(""),
			"videoUrl":           nullable("string", "API URL of the video (GET /api/v1/runs/{id}/video)"),
			"screenshots":        arrayOf(str("API URL of a screenshot")),
			"artifactWarnings":   arrayOf(str("an artifact that could not be stored, and why")),
			"artifactsExpiredAt": nt("when retention removed the run's artifacts"),
			"createdAt":          t(""), "updatedAt": t(""),
			"selectorHealth": obj{"description": "GET /runs/{id} only: the actions' selector health summed up",
				"$ref": "#/components/schemas/SelectorHealthSummary"},
		}),
		"SelectorHealth": obj{"type": []string{"object", "null"}, "description": "how the worker found the action's element; null when it located none",
			"properties": obj{
				"primary":   str("the strategy tried first (the recording's first choice), labelled as selectorUsed"),
				"strategy":  str("the strategy that matched; empty when none did"),
				"position":  obj{"type": "integer", "description": "0-based priority position of strategy (0: the primary); -1 when none matched"},
				"matches":   obj{"type": "integer", "description": "elements strategy matched"},
				"failed":    obj{"type": "array", "items": obj{"type": "string"}, "description": "strategies tried first, each with why it failed"},
				"stale":     obj{"type": "boolean", "description": "the primary selector no longer matches any element"},
				"ambiguous": obj{"type": "boolean", "description": "the primary selector matches more than one element"},
			}},
		"SelectorHealthNote": object(nil, obj{
			"actionId": str(""), "index": obj{"type": "integer", "description": "0-based action index"},
			"primary": str("the stale or ambiguous primary strategy"), "strategy": str("what matched instead; empty when nothing did"),
		}),
		"SelectorHealthSummary": object(nil, obj{
			"located":   obj{"type": "integer", "description": "actions that looked for an element"},
			"primary":   obj{"type": "integer", "description": "found by their primary selector"},
			"fallback":  obj{"type": "integer", "description": "found by a later strategy"},
			"notFound":  obj{"type": "integer", "description": "not found"},
			"stale":     obj{"type": "array", "items": ref("SelectorHealthNote")},
			"ambiguous": obj{"type": "array", "items": ref("SelectorHealthNote")},
		}),
		"Screenshot": object(nil, obj{
			"actionId": str(""), "actionIndex": nullable("integer", ""), "name": str(""), "contentType": str(""),
			"size": intT, "takenAt": t(""), "url": str("API URL of the image"),
		}),
		"ArtifactLinks": object(nil, obj{
			"expiresAt": t("when the links stop working"), "video": nullable("string", "signed link to the video"),
			"screenshots": arrayOf(object(nil, obj{"name": str(""), "url": str("signed link")})),
		}),
		"RunAction": object(nil, obj{
			"actionId": str(""), "actionType": str(""), "actionIndex": intT,
			"status":    enumOf("", persistence.ActionPending, persistence.ActionSuccess, persistence.ActionFailed, persistence.ActionTimeout, persistence.ActionSkipped),
			"startedAt": nt(""), "completedAt": nt(""), "durationMs": nullable("integer", ""),
			"selectorUsed": nullable("string", ""), "errorMessage": nullable("string", ""), "reason": nullable("string", "why it was skipped"),
			"warnings": strs, "screenshotUrl": nullable("string", ""), "selectorHealth": ref("SelectorHealth"),
		}),
	}
}

// buildOpenAPI renders the document once, at start-up.
func buildOpenAPI(version string) ([]byte, error) {
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":   "SaveAction Runner API",
			"version": version,
			"description": strings.Join([]string{
				"Runs recorded browser tests. JSON in and out; times are RFC 3339 UTC with milliseconds.",
				"Every error has the shape of the Error schema; X-Request-ID is echoed or generated on every response.",
				"Authenticated routes answer with X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.",
			}, " "),
		},
		"paths": openAPIPaths(),
		"components": obj{
			"schemas":         openAPISchemas(),
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer", "bearerFormat": "sa_live_<64 hex>"}},
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode OpenAPI document: %w", err)
	}
	return b, nil
}
