package main

import (
	"io"
	"os"
	"sync"
	"time"
)

// logFlushEvery bounds how long a log line of a long-running node waits in
// its buffer.
const logFlushEvery = 50 * time.Millisecond

// logBufferLimit is the buffer size past which a write flushes at once.
const logBufferLimit = 64 << 10

// flushingWriter buffers the log lines of a long-running node and writes
// them out every logFlushEvery (and when the buffer fills). slog's handler
// writes each record under its lock: one write system call per request
// (≈ 5 % of the API's CPU under GET load) made every other request wait
// its turn behind it, which showed in the tail latency. Lines are written
// whole and in order; at most logFlushEvery of them is lost if the process
// is killed (main flushes before it exits).
type flushingWriter struct {
	mu      sync.Mutex
	out     io.Writer
	buf     []byte
	started bool
	writeMu sync.Mutex // one writer of out at a time, in order
}

// nodeLog is where long-running nodes log: standard error, buffered.
var nodeLog = newFlushingWriter(os.Stderr)

func newFlushingWriter(out io.Writer) *flushingWriter {
	return &flushingWriter{out: out, buf: make([]byte, 0, logBufferLimit)}
}

func (w *flushingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= logBufferLimit
	if !w.started {
		w.started = true
		go w.loop()
	}
	w.mu.Unlock()
	if full {
		w.Flush()
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (w *flushingWriter) Flush() {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.mu.Lock()
	if len(w.buf) == 0 {
		w.mu.Unlock()
		return
	}
	out := w.buf
	w.buf = make([]byte, 0, logBufferLimit)
	w.mu.Unlock()
	_, _ = w.out.Write(out)
}

func (w *flushingWriter) loop() {
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for range t.C {
		w.Flush()
	}
}
