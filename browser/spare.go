package browser

import (
	"context"
	"sync"
)

// Spare sessions. Most of a run's start is Chromium making the browser
// context's renderer: creating the context and its page, attaching to it
// and enabling its domains took ≈ 450 ms of the ≈ 600 ms before a warm
// browser's first action (browser/startup_trace_test.go). A browser that
// keeps spares makes sessions ahead, while its runs replay or its slots are
// idle, so a run's start only applies its own emulation and loads its
// start page.
//
// Each spare is a complete session of the browser's Policy (a fresh
// incognito context, its own filtering proxy and download folder) that no
// run has used; a run takes one whole and disposes of it at its end, as
// with a session made for it, so no context ever serves two runs.

// maxSpares bounds KeepSpares.
const maxSpares = 8

// spares are the sessions a Browser made ahead.
type spares struct {
	mu     sync.Mutex
	want   int
	ready  []*session
	making int
	// waiting counts the runs waiting for a spare being made; change is
	// closed when one is ready or failed.
	waiting int
	change  chan struct{}
	closed  bool
	wg      sync.WaitGroup // sessions being made
	made    int            // spares made since launch (tests)
	taken   int            // spares runs took (tests)
}

// KeepSpares makes the browser keep n sessions ready for the runs to come
// (at most maxSpares; 0 keeps none, and disposes of those ready). Each run
// that takes one starts making its replacement at once. Safe to call at
// any time, from any goroutine.
func (b *Browser) KeepSpares(n int) {
	n = min(max(n, 0), maxSpares)
	sp := &b.spares
	sp.mu.Lock()
	sp.want = n
	var extra []*session
	if len(sp.ready) > n {
		extra = append(extra, sp.ready[n:]...)
		sp.ready = sp.ready[:n]
	}
	b.fillLocked()
	sp.mu.Unlock()
	for _, s := range extra {
		go s.dispose()
	}
}

// Spares returns how many spare sessions are ready now.
func (b *Browser) Spares() int {
	b.spares.mu.Lock()
	defer b.spares.mu.Unlock()
	return len(b.spares.ready)
}

// fillLocked starts making the spares that are missing. Called with
// spares.mu held.
func (b *Browser) fillLocked() {
	sp := &b.spares
	for !sp.closed && len(sp.ready)+sp.making < sp.want {
		sp.making++
		sp.wg.Add(1)
		go b.makeSpare()
	}
}

// makeSpare makes one spare session and keeps it, unless the browser no
// longer wants it. A failure is not retried here (the browser may be
// dead): the next run that takes a session tries again.
func (b *Browser) makeSpare() {
	sp := &b.spares
	defer sp.wg.Done()
	ctx, cancel := context.WithTimeout(b.life, setupTimeout)
	s, err := b.newSession(ctx)
	cancel()
	sp.mu.Lock()
	sp.making--
	keep := err == nil && !sp.closed && len(sp.ready) < sp.want+sp.waiting
	if keep {
		sp.ready = append(sp.ready, s)
		sp.made++
	}
	sp.notify()
	sp.mu.Unlock()
	if err == nil && !keep {
		s.dispose()
	}
}

// session returns a session for one run: a ready spare when the browser
// has a sound one; else the spare being made, when one is (waiting for it
// is sooner than starting another renderer beside it); else one made now.
// Taking a spare does not start its replacement: the run calls refill once
// its actions are done, so the two do not compete for the CPU.
func (b *Browser) session(ctx context.Context) (*session, error) {
	sp := &b.spares
	sp.mu.Lock()
	for {
		if n := len(sp.ready); n > 0 {
			s := sp.ready[0]
			sp.ready = sp.ready[1:]
			sp.taken++
			sp.mu.Unlock()
			if s.sound() {
				return s, nil
			}
			// Its renderer died while it waited: throw it away.
			go s.dispose()
			sp.mu.Lock()
			continue
		}
		if sp.closed || sp.making <= sp.waiting {
			sp.mu.Unlock()
			return b.newSession(ctx)
		}
		sp.waiting++
		ch := sp.changed()
		sp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		sp.mu.Lock()
		sp.waiting--
		if ctx.Err() != nil {
			sp.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// refill starts making the spares the browser is short of.
func (b *Browser) refill() {
	b.spares.mu.Lock()
	b.fillLocked()
	b.spares.mu.Unlock()
}

// changed returns a channel closed at the next change of ready or making.
// Called with mu held.
func (sp *spares) changed() <-chan struct{} {
	if sp.change == nil {
		sp.change = make(chan struct{})
	}
	return sp.change
}

// notify wakes the runs waiting for a spare. Called with mu held.
func (sp *spares) notify() {
	if sp.change != nil {
		close(sp.change)
		sp.change = nil
	}
}

// sound reports whether a spare's page is still alive and untouched.
func (s *session) sound() bool {
	return s.stopped.Err() == nil && s.crashErr() == nil && s.b.Alive()
}

// closeSpares disposes of the ready spares and waits for those being made
// (their calls end with the browser's connection). Called by Close.
func (b *Browser) closeSpares() {
	sp := &b.spares
	sp.mu.Lock()
	sp.closed = true
	ready := sp.ready
	sp.ready = nil
	sp.notify()
	sp.mu.Unlock()
	for _, s := range ready {
		s.dispose()
	}
	sp.wg.Wait()
}
