package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultStopTimeout bounds the Stop of a component that names no
// deadline of its own.
const DefaultStopTimeout = 30 * time.Second

// Group is the components of one process, composed once: started in the
// order given, stopped in reverse and waited for.
type Group struct {
	log         *slog.Logger
	stopTimeout time.Duration
	services    []Service
	started     []Service
	failed      chan error
	unwatch     chan struct{}
	unwatchOnce sync.Once
}

// NewGroup returns the group of services, in start order. A nil log
// discards the group's own logging.
func NewGroup(log *slog.Logger, services ...Service) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log, stopTimeout: DefaultStopTimeout, services: services,
		failed: make(chan error, len(services)), unwatch: make(chan struct{})}
}

// WithStopTimeout sets the stop deadline of components that name none.
func (g *Group) WithStopTimeout(d time.Duration) *Group {
	if d > 0 {
		g.stopTimeout = d
	}
	return g
}

// Start starts every component in order. When one cannot start, those
// already started are stopped in reverse order and the error names the
// component that failed.
func (g *Group) Start(ctx context.Context) error {
	startErr, stopErr := g.start(ctx)
	return errors.Join(startErr, stopErr)
}

func (g *Group) start(ctx context.Context) (startErr, stopErr error) {
	for _, s := range g.services {
		err := ctx.Err()
		if err == nil {
			g.log.Debug("starting", "component", s.Name())
			err = s.Start(ctx)
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", s.Name(), err), g.stopAll()
		}
		g.started = append(g.started, s)
		go g.watch(s)
	}
	return nil, nil
}

// watch forwards the failure of s, named, until the group stops.
func (g *Group) watch(s Service) {
	select {
	case err := <-s.Failed():
		g.failed <- fmt.Errorf("%s failed: %w", s.Name(), err)
	case <-g.unwatch:
	}
}

// Wait blocks until ctx ends or a component fails, then stops every
// started component in reverse order. It returns the failure, if any,
// joined with the errors of stopping; nil after a clean stop on ctx.
func (g *Group) Wait(ctx context.Context) error {
	var failure error
	select {
	case <-ctx.Done():
		g.log.Info("stopping", "reason", "signal")
	case failure = <-g.failed:
		g.log.Error("component failed; stopping the process", "error", failure)
	}
	return errors.Join(failure, g.stopAll())
}

// Run starts the group, then waits as Wait does. A start-up cut short by
// ctx (a signal while starting) is a clean stop, not a failure.
func (g *Group) Run(ctx context.Context) error {
	startErr, stopErr := g.start(ctx)
	if startErr != nil && ctx.Err() != nil {
		g.log.Info("stopped while starting", "reason", "signal")
		return stopErr
	}
	if startErr != nil {
		return errors.Join(startErr, stopErr)
	}
	return g.Wait(ctx)
}

// stopAll stops the started components in reverse order, each within its
// own deadline, so one that hangs does not take the others' time.
func (g *Group) stopAll() error {
	g.unwatchOnce.Do(func() { close(g.unwatch) })
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		s := g.started[i]
		d := g.stopTimeout
		if st, ok := s.(StopTimeouter); ok && st.StopTimeout() > 0 {
			d = st.StopTimeout()
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		start := time.Now()
		err := s.Stop(ctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.Name(), err))
			g.log.Warn("component did not stop cleanly", "component", s.Name(), "error", err)
			continue
		}
		g.log.Debug("stopped", "component", s.Name(), "took", time.Since(start).Round(time.Millisecond))
	}
	g.started = nil
	return errors.Join(errs...)
}
