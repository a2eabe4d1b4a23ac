// Package service gives every component of a node that owns a goroutine
// (HTTP servers, the actor remote, the worker, the reconciler loop) one
// lifecycle: Start returns once the component serves, Stop ends it and
// waits for its goroutines, and a component that dies on its own says so
// on Failed. A Group composes them: started in order, stopped in reverse,
// and the failure of one stops the rest.
package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Service is a component with a lifecycle.
type Service interface {
	// Name names the component in logs and errors.
	Name() string
	// Start brings the component up and returns once it serves, or with
	// the reason it could not. ctx bounds the start-up only: what Start
	// begins lives until Stop.
	Start(ctx context.Context) error
	// Stop ends the component and waits for its goroutines, within ctx.
	// It is safe to call more than once, and after a failure.
	Stop(ctx context.Context) error
	// Failed delivers the error of a component that stopped on its own
	// after a successful Start. A component stopped by Stop sends nothing.
	Failed() <-chan error
}

// StopTimeouter is implemented by components that need a stop deadline
// of their own (a worker draining its runs), longer or shorter than the
// Group's default.
type StopTimeouter interface {
	StopTimeout() time.Duration
}

// ErrStoppedUnexpectedly is the failure of a component whose Run returned
// nil before it was asked to stop.
var ErrStoppedUnexpectedly = errors.New("stopped unexpectedly")

// Funcs are the hooks of a component made with New. Every hook is optional.
type Funcs struct {
	// Start sets the component up; the component serves once it returns nil.
	Start func(ctx context.Context) error
	// Run is the component's goroutine. It runs from a successful Start
	// until ctx ends (Stop) and then returns nil; returning before that,
	// with or without an error, is a failure of the component.
	Run func(ctx context.Context) error
	// Stop tears down what Start set up; it runs after Run has returned,
	// whether the component was stopped or failed.
	Stop func(ctx context.Context) error
	// StopTimeout, when positive, is the component's own stop deadline.
	StopTimeout time.Duration
}

// New returns a component built from hooks.
func New(name string, f Funcs) Service {
	return &basic{name: name, f: f, failed: make(chan error, 1)}
}

type basic struct {
	name   string
	f      Funcs
	failed chan error

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	ran     chan struct{} // closed when Run returned
	stopped bool
	stopErr error
}

func (b *basic) Name() string               { return b.name }
func (b *basic) Failed() <-chan error       { return b.failed }
func (b *basic) StopTimeout() time.Duration { return b.f.StopTimeout }

func (b *basic) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return fmt.Errorf("%s: started twice", b.name)
	}
	if b.f.Start != nil {
		if err := b.f.Start(ctx); err != nil {
			return err
		}
	}
	b.started = true
	// Run's context is not ctx: ctx bounds the start-up, Run lives until Stop.
	rctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.ran = make(chan struct{})
	if b.f.Run == nil {
		close(b.ran)
		return nil
	}
	go func() {
		defer close(b.ran)
		err := b.f.Run(rctx)
		if rctx.Err() != nil {
			return // asked to stop
		}
		if err == nil {
			err = ErrStoppedUnexpectedly
		}
		b.failed <- err
	}()
	return nil
}

func (b *basic) Stop(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.stopped {
		return b.stopErr
	}
	b.cancel()
	select {
	case <-b.ran:
	case <-ctx.Done():
		// Not marked stopped: a later Stop with more time may still wait.
		return fmt.Errorf("%s: stop: %w", b.name, ctx.Err())
	}
	b.stopped = true
	if b.f.Stop != nil {
		b.stopErr = b.f.Stop(ctx)
	}
	return b.stopErr
}
