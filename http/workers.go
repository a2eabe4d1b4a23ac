package http

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
)

// CodeWorkerNotFound answers a drain or resume of a worker the fleet does
// not know.
const CodeWorkerNotFound = "WORKER_NOT_FOUND"

// ErrWorkerNotFound is returned by a Fleet for a name it does not know.
var ErrWorkerNotFound = errors.New("worker not found")

// Worker is one live worker node as the fleet view shows it.
type Worker struct {
	Name       string    `json:"name"`
	Address    string    `json:"address"`
	Version    string    `json:"version"`
	StartedAt  time.Time `json:"startedAt"`
	Slots      int       `json:"slots"`
	Busy       int       `json:"busy"`
	Runs       []string  `json:"runs"`
	State      string    `json:"state"` // active or draining
	LastSeenAt time.Time `json:"lastSeenAt"`
}

// FleetView is what the API knows of the worker nodes.
type FleetView struct {
	Workers []Worker `json:"workers"`
	// Clustered is false when no cluster is configured: the list is then
	// only the nodes this API node can see (its own worker in dev mode).
	Clustered bool   `json:"clustered"`
	Note      string `json:"note,omitempty"`
}

// Fleet reaches the worker nodes (through the actor cluster).
type Fleet interface {
	Workers(ctx context.Context) (FleetView, error)
	// SetDraining drains (true) or resumes (false) the named worker and
	// returns its state after; ErrWorkerNotFound for an unknown name.
	SetDraining(ctx context.Context, name string, draining bool) (Worker, error)
}

// listWorkers answers GET /api/v1/workers.
func (s *server) listWorkers(c *fiber.Ctx) error {
	if s.fleet == nil {
		return respond(c, fiber.StatusOK, FleetView{Workers: []Worker{},
			Note: "no cluster is configured and this node runs no worker: it sees no worker nodes"})
	}
	v, err := s.fleet.Workers(c.UserContext())
	if err != nil {
		return err
	}
	if v.Workers == nil {
		v.Workers = []Worker{}
	}
	return respond(c, fiber.StatusOK, v)
}

// drainWorker answers POST /api/v1/workers/:name/drain.
func (s *server) drainWorker(c *fiber.Ctx) error { return s.setDraining(c, true) }

// resumeWorker answers POST /api/v1/workers/:name/resume.
func (s *server) resumeWorker(c *fiber.Ctx) error { return s.setDraining(c, false) }

func (s *server) setDraining(c *fiber.Ctx, draining bool) error {
	name := c.Params("name")
	if s.fleet == nil {
		return newAPIError(fiber.StatusNotFound, CodeWorkerNotFound, "worker %q not found", name)
	}
	w, err := s.fleet.SetDraining(c.UserContext(), name, draining)
	if errors.Is(err, ErrWorkerNotFound) {
		return newAPIError(fiber.StatusNotFound, CodeWorkerNotFound, "worker %q not found", name)
	}
	if err != nil {
		return err
	}
	return respond(c, fiber.StatusOK, w)
}
