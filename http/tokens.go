package http

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/saveaction/runner/persistence"
)

// createToken answers POST /api/v1/tokens. A token can only hand out scopes
// it has itself; omitted scopes mean the caller's.
func (s *server) createToken(c *fiber.Ctx) error {
	req, ps := parseCreateToken(c.Body(), s.now())
	if len(ps) > 0 {
		return invalid(ps...)
	}
	p := principalOf(c)
	scopes := req.Scopes
	if scopes == nil {
		scopes = slices.Clone(p.Scopes)
	}
	var missing []string
	for _, sc := range scopes {
		if !slices.Contains(p.Scopes, sc) {
			missing = append(missing, sc)
		}
	}
	if len(missing) > 0 {
		return &apiError{
			Status: fiber.StatusForbidden, Code: CodeInsufficientScope,
			Message: "a token cannot grant scopes it lacks: " + strings.Join(missing, ", "),
			Details: map[string]any{"missingScopes": missing},
		}
	}
	plain, tok, err := persistence.CreateToken(c.UserContext(), s.db, p.UserID, req.Name, scopes, req.ExpiresAt)
	if err != nil {
		return err
	}
	v := newTokenView(tok)
	v.Token = plain
	return respond(c, fiber.StatusCreated, v)
}

// listTokens answers GET /api/v1/tokens: the caller's tokens, no secrets.
func (s *server) listTokens(c *fiber.Ctx) error {
	var ps problems
	page := parsePage(queryValues(c), &ps)
	if len(ps) > 0 {
		return invalid(ps...)
	}
	toks, total, err := persistence.ListTokens(c.UserContext(), s.db, principalOf(c).UserID, page.Limit, page.offset())
	if err != nil {
		return err
	}
	out := make([]tokenView, len(toks))
	for i := range toks {
		out[i] = newTokenView(&toks[i])
	}
	return respondList(c, out, newPagination(page.Page, page.Limit, total))
}

// revokeToken answers POST /api/v1/tokens/:id/revoke.
func (s *server) revokeToken(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	tok, err := persistence.RevokeToken(c.UserContext(), s.db, principalOf(c).UserID, id, s.now())
	if err != nil {
		return err
	}
	s.tokenChanged(c.UserContext(), id)
	return respond(c, fiber.StatusOK, newTokenView(tok))
}

// deleteToken answers DELETE /api/v1/tokens/:id.
func (s *server) deleteToken(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := persistence.DeleteToken(c.UserContext(), s.db, principalOf(c).UserID, id); err != nil {
		return err
	}
	s.tokenChanged(c.UserContext(), id)
	return respond(c, fiber.StatusOK, fiber.Map{"id": id.String(), "deletedAt": fmtTime(s.now())})
}
