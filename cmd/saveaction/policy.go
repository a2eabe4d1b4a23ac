package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/netguard"
)

// runPolicy is what the pages of service runs may reach: web pages only,
// file inputs from FILES_PATH only, and the network less
// RUN_BLOCKED_NETWORKS and the worker's own services (issue 15).
func runPolicy(ctx context.Context, cfg *Config, actorAddr string, metricsOn bool, log *slog.Logger, m *netguard.Metrics, more ...string) browser.Policy {
	np := &netguard.Policy{
		BlockedNetworks:  cfg.RunBlockedNetworks,
		BlockedEndpoints: append([]netip.AddrPort(nil), cfg.RunBlockedEndpoints...),
		AllowedHosts:     cfg.RunAllowedHosts,
	}
	for _, ep := range ownEndpoints(cfg, actorAddr, metricsOn, more...) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		aps, err := netguard.ParseEndpoint(rctx, ep.addr, nil)
		cancel()
		if err != nil {
			// The service is reachable (we are connected to it), so this
			// is a resolver hiccup: say so rather than refuse to start.
			log.Warn("cannot block a service of the worker from runs", "service", ep.what, "address", ep.addr, "error", err)
			continue
		}
		np.BlockedEndpoints = append(np.BlockedEndpoints, aps...)
	}
	return browser.Policy{
		Service:          true,
		Network:          np,
		MaxDownloadBytes: int64(cfg.RunMaxDownloadMB) << 20,
		OnBlock:          m.Count,
	}
}

type endpoint struct{ what, addr string }

// ownEndpoints are the worker's own services, host:port, as configured;
// more are other actor remotes of the node (its cluster membership's).
func ownEndpoints(cfg *Config, actorAddr string, metricsOn bool, more ...string) []endpoint {
	var out []endpoint
	add := func(what, hostport, defaultPort string) {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host, port = hostport, defaultPort
		}
		if host == "" || host[0] == '/' || port == "" {
			return // a Unix socket, or nothing to block
		}
		out = append(out, endpoint{what, net.JoinHostPort(host, port)})
	}
	if u, err := url.Parse(cfg.DatabaseURL); err == nil {
		add("database", u.Host, "5432")
	}
	if u, err := url.Parse(cfg.RedisURL); err == nil {
		add("redis", u.Host, "6379")
	}
	if _, _, err := net.SplitHostPort(actorAddr); err == nil {
		add("actor", actorAddr, "")
	}
	for _, a := range more {
		if _, _, err := net.SplitHostPort(a); err == nil {
			add("cluster", a, "")
		}
	}
	if metricsOn && cfg.MetricsPort != 0 {
		add("metrics", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.MetricsPort)), "")
	}
	return out
}
