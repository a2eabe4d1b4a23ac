package http

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// TestReadSlotsBoundReadsAndServeInOrder: no more plain reads run at once
// than the node has slots, the waiting ones go in the order they came, and
// one whose deadline passes while waiting fails with its context's error.
func TestReadSlotsBoundReadsAndServeInOrder(t *testing.T) {
	s := &server{readSlots: make(chan struct{}, 2)}
	var running, most atomic.Int32
	var mu sync.Mutex
	var order []string
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		if errors.Is(err, context.DeadlineExceeded) {
			return c.SendStatus(fiber.StatusGatewayTimeout)
		}
		return c.SendStatus(fiber.StatusInternalServerError)
	}})
	app.Use(func(c *fiber.Ctx) error {
		if c.Query("wait") != "" {
			d, _ := time.ParseDuration(c.Query("wait"))
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			c.SetUserContext(ctx)
		}
		return c.Next()
	})
	app.Get("/read", s.read, func(c *fiber.Ctx) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		mu.Lock()
		order = append(order, c.Query("n"))
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		return c.SendString("ok")
	})
	get := func(q string) int {
		res, err := app.Test(httptest.NewRequest("GET", "/read?"+q, nil), -1)
		if err != nil {
			t.Error(err)
			return 0
		}
		return res.StatusCode
	}

	// Both slots taken by others: the reads queue up.
	s.readSlots <- struct{}{}
	s.readSlots <- struct{}{}
	var wg sync.WaitGroup
	codes := make([]int, 6)
	names := []string{"a", "b", "c", "d", "e", "f"}
	for i, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = get("n=" + n) }()
		time.Sleep(15 * time.Millisecond) // arrive in this order
	}
	if code := get("n=late&wait=50ms"); code != fiber.StatusGatewayTimeout {
		t.Errorf("a read out of time while waiting answered %d, want its deadline's error", code)
	}
	<-s.readSlots
	<-s.readSlots
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("read %s answered %d", names[i], c)
		}
	}
	if m := most.Load(); m != 2 {
		t.Errorf("%d reads ran at once, want the 2 slots' worth", m)
	}
	// Freed two at a time, the first two in are served first, and so on.
	for i := 0; i+1 < len(order); i += 2 {
		pair := map[string]bool{order[i]: true, order[i+1]: true}
		if !pair[names[i]] || !pair[names[i+1]] {
			t.Fatalf("served in the order %v, want the order they came in %v", order, names)
		}
	}
	if len(s.readSlots) != 0 {
		t.Errorf("%d slots still taken", len(s.readSlots))
	}
}
