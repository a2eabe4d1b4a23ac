package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Timers that send an actor messages from outside its goroutine, through
// the system's root context (an actor's own context is only for use inside
// Receive). protoactor's scheduler.SendRepeatedly is not used: its timer
// reads its state without an atomic load while its cancel swaps it, a data
// race the race detector reports when a worker stops as its tick fires.

// sendEvery sends msg to pid every d until the returned stop is called;
// once stop returns, no more messages are sent. stop may be called more
// than once.
func sendEvery(root *actor.RootContext, d time.Duration, pid *actor.PID, msg any) (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				select {
				case <-quit:
					return
				default:
					root.Send(pid, msg)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-exited
	}
}

// sendAfter sends msg to pid once, after d.
func sendAfter(root *actor.RootContext, d time.Duration, pid *actor.PID, msg any) {
	time.AfterFunc(d, func() { root.Send(pid, msg) })
}
