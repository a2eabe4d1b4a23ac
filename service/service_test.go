package service

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records what the components of a test did, in order.
type journal struct {
	mu  sync.Mutex
	got []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.got = append(j.got, s)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.got)
}

// component is a test component: it journals its start and stop, runs
// until stopped, and can be told to fail at start or while running.
func component(j *journal, name string, startErr error, die <-chan error) Service {
	return New(name, Funcs{
		Start: func(context.Context) error {
			if startErr != nil {
				return startErr
			}
			j.add("start " + name)
			return nil
		},
		Run: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case err := <-die:
				return err
			}
		},
		Stop: func(context.Context) error { j.add("stop " + name); return nil },
	})
}

func TestGroupLifecycle(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name      string
		startErr  map[string]error // by component
		dieWith   map[string]error // sent to the component once all started
		cancel    bool             // end by the context (a signal)
		wantErr   string           // "" = nil
		wantStart []string
	}{
		{name: "stopped by the signal: in order, then in reverse", cancel: true,
			wantStart: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
		{name: "a start fails: the started ones stop in reverse", startErr: map[string]error{"b": boom},
			wantErr: "start b: boom", wantStart: []string{"start a", "stop a"}},
		{name: "a component dies: the process stops", dieWith: map[string]error{"b": boom},
			wantErr: "b failed: boom", wantStart: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
		{name: "a component returns without error: still a failure", dieWith: map[string]error{"c": nil},
			wantErr: "c failed: stopped unexpectedly", wantStart: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			dies := map[string]chan error{}
			var svcs []Service
			for _, n := range []string{"a", "b", "c"} {
				dies[n] = make(chan error, 1)
				svcs = append(svcs, component(j, n, tc.startErr[n], dies[n]))
			}
			g := NewGroup(nil, svcs...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			if len(tc.startErr) == 0 {
				waitFor(t, func() bool { return len(j.list()) == 3 })
				for n, err := range tc.dieWith {
					dies[n] <- err
				}
				if tc.cancel {
					cancel()
				}
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the group did not return")
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if got := j.list(); !slices.Equal(got, tc.wantStart) {
				t.Fatalf("journal %v, want %v", got, tc.wantStart)
			}
		})
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAHangingStopDoesNotTakeTheOthersTime(t *testing.T) {
	j := &journal{}
	hang := New("hang", Funcs{
		Stop:        func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		StopTimeout: 100 * time.Millisecond,
	})
	g := NewGroup(nil, component(j, "first", nil, nil), hang)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := g.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stop hang") {
		t.Fatalf("err = %v, want the hanging component's deadline", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start first", "stop first"}) {
		t.Fatalf("journal %v: the component before the hanging one was not stopped", got)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stop took %s; the hanging component's own deadline is 100 ms", took)
	}
}

// httpServer is a net/http server as a component, and the listener it got.
func httpServer(t *testing.T, h http.Handler) (*Server, *net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	var ln net.Listener
	s := NewServer("metrics", ServerFuncs{
		Listen: func() (net.Listener, error) {
			var err error
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			return ln, err
		},
		Serve:    srv.Serve,
		Shutdown: srv.Shutdown,
	})
	return s, &ln
}

func TestServerWhoseListenerDiesStopsTheGroup(t *testing.T) {
	j := &journal{}
	s, ln := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	g := NewGroup(nil, component(j, "before", nil, nil), s)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("served %q", body)
	}
	// The listener dies under the server (as when its socket is torn down).
	_ = (*ln).Close()
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the group kept running after its server died")
	}
	if err == nil || !strings.Contains(err.Error(), "metrics failed: serve") {
		t.Fatalf("err = %v, want the server's failure named", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start before", "stop before"}) {
		t.Fatalf("journal %v", got)
	}
}

func TestServerStopWaitsForTheRequestInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, _ := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != "finished" {
		t.Fatalf("the request in flight got %q", b)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStartFailureOfAServerNamesIt(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := NewServer("api", ServerFuncs{
		Listen:   func() (net.Listener, error) { return net.Listen("tcp", taken.Addr().String()) },
		Serve:    func(net.Listener) error { return nil },
		Shutdown: func(context.Context) error { return nil },
	})
	err = NewGroup(nil, s).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start api") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
}

func TestSignalWhileStartingIsACleanStop(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The second component takes the signal while it starts.
	slow := New("slow", Funcs{Start: func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}})
	err := NewGroup(nil, component(j, "first", nil, nil), slow, component(j, "never", nil, nil)).Run(ctx)
	if err != nil {
		t.Fatalf("err = %v, want a clean stop", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start first", "stop first"}) {
		t.Fatalf("journal %v", got)
	}
}
