package http

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/recording"
)

// queryValues returns the request's query parameters, repeats included.
func queryValues(c *fiber.Ctx) url.Values {
	q := url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { q.Add(string(k), string(v)) })
	return q
}

// idParam reads the :id path parameter; a value that is not a UUID is a
// VALIDATION_ERROR (never a 500, never a lookup).
func idParam(c *fiber.Ctx) (uuid.UUID, error) {
	id, err := parseUUID(c.Params("id"))
	if err != nil {
		return uuid.Nil, invalid(problem{Path: "id", Message: "must be a UUID"})
	}
	return id, nil
}

// fillFromRecording sets what a stored recording derives from its data.
func fillFromRecording(r *persistence.Recording, data []byte, rec *recording.Recording) {
	r.Data = data
	r.OriginalID = rec.ID
	r.URL = rec.URL
	r.ActionCount = len(rec.Actions)
	r.EstimatedDurationMs = rec.EstimatedDurationMs()
	r.SchemaVersion = rec.Version
	r.DataSizeBytes = len(data)
	r.Variables = rec.VariableNames()
	if r.Variables == nil {
		r.Variables = []string{}
	}
}

// createRecording answers POST /api/v1/recordings.
func (s *server) createRecording(c *fiber.Ctx) error {
	up, ps := parseRecordingUpload(c.Body())
	if len(ps) > 0 {
		return invalid(ps...)
	}
	now := s.now()
	r := &persistence.Recording{
		UserID: principalOf(c).UserID, Name: up.Name, Description: up.Description, Tags: up.Tags,
		CreatedAt: now, UpdatedAt: now,
	}
	fillFromRecording(r, up.Data, up.Rec)
	if err := persistence.CreateRecording(c.UserContext(), s.db, r); err != nil {
		return err
	}
	v := newRecordingView(r, false)
	v.Warnings = up.Rec.Warnings
	return respond(c, fiber.StatusCreated, v)
}

// listRecordings answers GET /api/v1/recordings.
func (s *server) listRecordings(c *fiber.Ctx) error {
	q, ps := parseRecordingListQuery(queryValues(c))
	if len(ps) > 0 {
		return invalid(ps...)
	}
	recs, total, err := persistence.ListRecordings(c.UserContext(), s.db, persistence.RecordingQuery{
		UserID: principalOf(c).UserID, Limit: q.Limit, Offset: q.offset(),
		Search: q.Search, Tags: q.Tags, SortBy: q.SortBy, Asc: q.Asc,
	})
	if err != nil {
		return err
	}
	out := make([]recordingView, len(recs))
	for i := range recs {
		out[i] = newRecordingView(&recs[i], false)
	}
	return respondList(c, out, newPagination(q.Page, q.Limit, total))
}

// getRecording answers GET /api/v1/recordings/:id, with the data.
func (s *server) getRecording(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	r, err := persistence.GetRecording(c.UserContext(), s.db, principalOf(c).UserID, id, true)
	if err != nil {
		return err
	}
	return respond(c, fiber.StatusOK, newRecordingView(r, true))
}

// exportRecording answers GET /api/v1/recordings/:id/export: the recording
// JSON alone, as a download.
func (s *server) exportRecording(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	r, err := persistence.GetRecording(c.UserContext(), s.db, principalOf(c).UserID, id, true)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+exportFileName(r)+`"`)
	return c.Status(fiber.StatusOK).Send(r.Data)
}

// exportFileName makes a safe file name from the recording's name.
func exportFileName(r *persistence.Recording) string {
	name := r.Name
	if name == "" {
		name = r.OriginalID
	}
	var b strings.Builder
	for _, ch := range name {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-', ch == '_', ch == '.':
			b.WriteRune(ch)
		case ch == ' ':
			b.WriteByte('-')
		}
		if b.Len() >= 100 {
			break
		}
	}
	out := strings.Trim(b.String(), ".-")
	if out == "" {
		out = "recording"
	}
	return out + ".json"
}

// updateRecording answers PUT /api/v1/recordings/:id.
func (s *server) updateRecording(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	up, ps := parseRecordingUpdate(c.Body())
	if len(ps) > 0 {
		return invalid(ps...)
	}
	ctx := c.UserContext()
	r, err := persistence.GetRecording(ctx, s.db, principalOf(c).UserID, id, true)
	if err != nil {
		return err
	}
	if up.Name != nil {
		r.Name = *up.Name
	}
	if up.Description != nil {
		r.Description = *up.Description
	}
	if up.HasTags {
		r.Tags = up.Tags
	}
	if up.Rec != nil {
		fillFromRecording(r, up.Data, up.Rec)
	}
	if err := persistence.UpdateRecording(ctx, s.db, r, s.now()); err != nil {
		return err
	}
	v := newRecordingView(r, false)
	if up.Rec != nil {
		v.Warnings = up.Rec.Warnings
	}
	return respond(c, fiber.StatusOK, v)
}

// deleteRecording answers DELETE /api/v1/recordings/:id (soft delete).
func (s *server) deleteRecording(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	at, err := persistence.DeleteRecording(c.UserContext(), s.db, principalOf(c).UserID, id, s.now())
	if err != nil {
		return err
	}
	return respond(c, fiber.StatusOK, fiber.Map{"id": id.String(), "deletedAt": fmtTime(at)})
}
