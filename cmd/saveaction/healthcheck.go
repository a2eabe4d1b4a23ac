package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// healthcheckTimeout bounds one probe: a container health check that hangs
// counts as a failure anyway, later.
const healthcheckTimeout = 10 * time.Second

// healthcheckCmd is the image's HEALTHCHECK: it exits 0 when this node is
// ready. With a URL it probes that URL; without, it asks the API's readiness
// (GET /api/health/ready on PORT) and, when nothing listens there, a
// worker's /metrics on METRICS_PORT, which a worker serves once its
// database, Redis and cluster membership are up. The image has no curl: one
// probe serves both kinds of node.
func healthcheckCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errors.New("usage: saveaction healthcheck [URL]")
	}
	client := &nethttp.Client{Timeout: healthcheckTimeout}
	if len(args) == 1 {
		return probe(ctx, client, args[0], stdout)
	}
	host := "127.0.0.1"
	api := "http://" + net.JoinHostPort(host, envOr("PORT", configDefaults["PORT"])) + "/api/health/ready"
	err := probe(ctx, client, api, stdout)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	metrics := envOr("METRICS_PORT", configDefaults["METRICS_PORT"])
	if metrics == "0" {
		return err
	}
	return probe(ctx, client, "http://"+net.JoinHostPort(host, metrics)+"/metrics", stdout)
}

// probe GETs url and wants a 200.
func probe(ctx context.Context, client *nethttp.Client, url string, stdout io.Writer) error {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%q: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != nethttp.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok", url)
	return nil
}

// envOr is the variable's value, or def when it is unset or blank.
func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
