package http

import (
	"embed"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The run page: plain files embedded in the binary, no build step.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP keeps the page to its own files and API: no inline script, no
// third-party anything.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiIndex answers GET / with the run page.
func (s *server) uiIndex(c *fiber.Ctx) error { return serveUI(c, "index.html") }

// uiAsset answers GET /ui/:file with the page's script and style sheet.
func (s *server) uiAsset(c *fiber.Ctx) error {
	name := c.Params("file")
	if name == "" {
		name = "index.html"
	}
	return serveUI(c, name)
}

func serveUI(c *fiber.Ctx, name string) error {
	if path.Base(name) != name || name == "." {
		return fiber.ErrNotFound
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return fiber.ErrNotFound
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set("Content-Security-Policy", uiCSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	// Small files; always fresh after an upgrade of the binary.
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Status(fiber.StatusOK).Send(b)
}
