package main

import (
	"context"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// closedPort is a port nothing listens on (taken, then released).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	return port
}

func serve(t *testing.T, path string, code int) string {
	t.Helper()
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path != path {
			nethttp.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

func TestHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		name         string
		api, metrics func(t *testing.T) string
		ok           bool
	}{
		{name: "API ready", api: func(t *testing.T) string { return serve(t, "/api/health/ready", 200) }, metrics: closedPort, ok: true},
		// A 503 is an answer: the node is an API node that is not ready.
		{name: "API not ready", api: func(t *testing.T) string { return serve(t, "/api/health/ready", 503) },
			metrics: func(t *testing.T) string { return serve(t, "/metrics", 200) }},
		{name: "worker serving metrics", api: closedPort, metrics: func(t *testing.T) string { return serve(t, "/metrics", 200) }, ok: true},
		{name: "nothing listening", api: closedPort, metrics: closedPort},
		{name: "worker metrics off", api: closedPort, metrics: func(t *testing.T) string { return "0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PORT", tc.api(t))
			t.Setenv("METRICS_PORT", tc.metrics(t))
			err := healthcheckCmd(context.Background(), nil, io.Discard)
			if (err == nil) != tc.ok {
				t.Fatalf("healthcheck: err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("explicit URL", func(t *testing.T) {
		port := serve(t, "/x", 200)
		if err := healthcheckCmd(context.Background(), []string{"http://127.0.0.1:" + port + "/x"}, io.Discard); err != nil {
			t.Fatal(err)
		}
		if err := healthcheckCmd(context.Background(), []string{"http://127.0.0.1:" + port + "/y"}, io.Discard); err == nil {
			t.Fatal("a 404 passed the health check")
		}
		if err := healthcheckCmd(context.Background(), []string{"a", "b"}, io.Discard); err == nil {
			t.Fatal("two URLs accepted")
		}
	})
}
