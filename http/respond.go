package http

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// timeLayout is how every time leaves the API: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func fmtTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := fmtTime(*t)
	return &s
}

type objectBody struct {
	Success bool `json:"success"`
	Data    any  `json:"data"`
}

type listBody struct {
	Success    bool       `json:"success"`
	Data       any        `json:"data"`
	Pagination pagination `json:"pagination"`
}

// pagination describes the page of a list answer.
type pagination struct {
	Page        int  `json:"page"`
	Limit       int  `json:"limit"`
	Total       int  `json:"total"`
	TotalPages  int  `json:"totalPages"`
	HasNext     bool `json:"hasNext"`
	HasPrevious bool `json:"hasPrevious"`
	// Lists read by keyset (runs) say whether Total is exact, and give the
	// cursor of the next page while there is one.
	TotalExact *bool  `json:"totalExact,omitempty"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func newPagination(page, limit, total int) pagination {
	pages := 0
	if limit > 0 {
		pages = (total + limit - 1) / limit
	}
	return pagination{Page: page, Limit: limit, Total: total, TotalPages: pages, HasNext: page < pages, HasPrevious: page > 1}
}

// respond answers with one object.
func respond(c *fiber.Ctx, status int, data any) error {
	return c.Status(status).JSON(objectBody{Success: true, Data: data})
}

// respondList answers with a page of a list.
func respondList(c *fiber.Ctx, data any, p pagination) error {
	return c.Status(fiber.StatusOK).JSON(listBody{Success: true, Data: data, Pagination: p})
}
