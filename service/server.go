package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerFuncs are the parts of a network server: how to listen, how to
// serve on the listener (blocking), and how to shut it down gracefully.
type ServerFuncs struct {
	// Listen opens the listener; its error should name the setting at
	// fault (PORT, METRICS_PORT).
	Listen func() (net.Listener, error)
	// Serve serves on ln until Shutdown, returning nil or
	// http.ErrServerClosed then; any other return is a failure.
	Serve func(ln net.Listener) error
	// Shutdown stops accepting, lets requests in flight end within ctx,
	// and closes the server.
	Shutdown func(ctx context.Context) error
	// StopTimeout, when positive, bounds the graceful stop.
	StopTimeout time.Duration
}

// Server is a network server as a component: Start listens (so a port
// taken fails the start, not later), Serve runs in its goroutine, and the
// server failing while the process runs (its listener gone) is a failure
// of the component.
type Server struct {
	Service
	mu   sync.Mutex
	addr net.Addr
}

// NewServer returns the component serving f.
func NewServer(name string, f ServerFuncs) *Server {
	s := &Server{}
	var served chan error
	s.Service = New(name, Funcs{
		Start: func(context.Context) error {
			ln, err := f.Listen()
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.addr = ln.Addr()
			s.mu.Unlock()
			served = make(chan error, 1)
			go func() { served <- f.Serve(ln) }()
			return nil
		},
		Run: func(ctx context.Context) error {
			select {
			case err := <-served:
				served <- err // for Stop, which waits on it too
				if err == nil || errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("server closed: %w", ErrStoppedUnexpectedly)
				}
				return fmt.Errorf("serve: %w", err)
			case <-ctx.Done():
				return nil
			}
		},
		Stop: func(ctx context.Context) error {
			err := f.Shutdown(ctx)
			select {
			case <-served:
			case <-ctx.Done():
				return fmt.Errorf("%s: wait for the server: %w", name, ctx.Err())
			}
			return err
		},
		StopTimeout: f.StopTimeout,
	})
	return s
}

// StopTimeout is the server's own stop deadline (0: the Group's).
func (s *Server) StopTimeout() time.Duration {
	st, _ := s.Service.(StopTimeouter)
	return st.StopTimeout()
}

// Addr is the address the server listens at, once started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}
