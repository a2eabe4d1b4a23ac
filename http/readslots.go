package http

import (
	"runtime"

	"github.com/gofiber/fiber/v2"
)

// readSlotsPerCPU sets how many plain reads (a route that reads the
// database and answers, nothing streamed) an API node runs at once, per
// CPU it may use; the rest wait their turn, first come, first served.
//
// Without it, 64 concurrent GET /runs/:id all went for the database pool
// (20 connections): database/sql hands a freed connection to a waiting
// request picked at random, so some requests waited many turns. Measured
// on 2 cores: p99 26–34 ms; with 8 slots, 12–16 ms and more requests
// served (fewer PostgreSQL backends contending for the CPU too).
const readSlotsPerCPU = 4

// newReadSlots makes the node's read slots.
func newReadSlots() chan struct{} {
	return make(chan struct{}, max(4, readSlotsPerCPU*runtime.GOMAXPROCS(0)))
}

// read is the second handler of the plain read routes: the rest of the
// request runs in one of the node's read slots. Waiting requests are
// served in order (a channel's blocked senders are woken first in, first
// out); one whose deadline passes while waiting fails as any request out
// of time does.
func (s *server) read(c *fiber.Ctx) error {
	ctx := c.UserContext()
	select {
	case s.readSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.readSlots }()
	return c.Next()
}
