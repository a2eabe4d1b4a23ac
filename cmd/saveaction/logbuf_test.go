package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFlushingWriterKeepsLinesWholeAndInOrder: lines written from many
// goroutines come out whole, each once, in the order each goroutine wrote
// them, within a flush period, and Flush writes out what is left.
func TestFlushingWriterKeepsLinesWholeAndInOrder(t *testing.T) {
	out := &syncBuffer{} // fleet_test.go
	w := newFlushingWriter(out)
	var wg sync.WaitGroup
	const writers, lines = 8, 2000
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(w, "g%d line %d %s\n", g, i, strings.Repeat("x", i%50))
			}
		}()
	}
	wg.Wait()
	fmt.Fprint(w, "last\n") // written out by the periodic flush
	deadline := time.Now().Add(5 * logFlushEvery)
	for !strings.HasSuffix(out.String(), "last\n") && time.Now().Before(deadline) {
		time.Sleep(logFlushEvery / 5)
	}
	if !strings.HasSuffix(out.String(), "last\n") {
		t.Fatalf("the last line was not written within %s", 5*logFlushEvery)
	}
	next := make([]int, writers)
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "last\n"), "\n") {
		if l == "" {
			continue
		}
		var g, i int
		var rest string
		if _, err := fmt.Sscanf(l, "g%d line %d %s", &g, &i, &rest); err != nil && i%50 != 0 {
			t.Fatalf("broken line %q: %v", l, err)
		}
		if i != next[g] || (i%50 != 0 && rest != strings.Repeat("x", i%50)) {
			t.Fatalf("writer %d: line %q, want line %d whole", g, l, next[g])
		}
		next[g]++
	}
	for g, n := range next {
		if n != lines {
			t.Errorf("writer %d: %d lines out, want %d", g, n, lines)
		}
	}
	// Flush (main calls it before the process exits) writes at once.
	fmt.Fprint(w, "at exit\n")
	w.Flush()
	if !strings.HasSuffix(out.String(), "last\nat exit\n") {
		t.Fatalf("Flush left a line behind: %q", out.String()[max(0, len(out.String())-40):])
	}
}
