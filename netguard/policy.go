// Package netguard decides which network addresses a replayed page may
// reach and enforces it with a small forward proxy that Chromium is pointed
// at. Decisions are made on the resolved address at connection time, so a
// host name that resolves (or re-resolves, DNS rebinding) to a blocked
// address is refused however the page got to it: a link, a redirect, a
// fetch or a WebSocket.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Rules, the values of the rule label of MetricRequestsBlocked. They are a
// fixed set so that the metric's cardinality stays bounded.
const (
	// RuleScheme: a URL scheme the service policy refuses (file:, chrome:, ...).
	RuleScheme = "scheme"
	// RuleNetwork: an address inside RUN_BLOCKED_NETWORKS.
	RuleNetwork = "network"
	// RuleEndpoint: one of the worker's own services (database, Redis,
	// actor, metrics), host and port.
	RuleEndpoint = "endpoint"
	// RuleHost: a host outside RUN_ALLOWED_HOSTS.
	RuleHost = "host"
	// RuleDownload: a download over the size cap.
	RuleDownload = "download"
)

// DefaultBlockedNetworks are blocked unless the operator says otherwise:
// the link-local ranges, which hold cloud metadata services
// (169.254.169.254 on AWS, GCP and Azure; fd00:ec2::254 is reached through
// fe80::/10-style link-local routes on some hosts).
func DefaultBlockedNetworks() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}
}

// Blocked says why a request was refused. Its message is the one a failed
// action shows.
type Blocked struct {
	// Rule is one of the Rule constants.
	Rule string
	// Target is what was asked for: a URL, or host:port for a tunnel.
	Target string
	// Reason names the setting that blocked it, e.g.
	// "RUN_BLOCKED_NETWORKS 169.254.0.0/16".
	Reason string
}

func (b *Blocked) Error() string {
	return "blocked by policy: " + b.Target + " (" + b.Reason + ")"
}

// Policy is the network policy of runs. The zero value allows everything.
// A Policy must not be changed once in use.
type Policy struct {
	// BlockedNetworks are refused whatever host name leads to them.
	BlockedNetworks []netip.Prefix
	// BlockedEndpoints are single address:port pairs (the worker's own
	// services). An endpoint on a loopback or unspecified address also
	// blocks that port on every address of this host, since a service
	// listening on 0.0.0.0 answers on all of them.
	BlockedEndpoints []netip.AddrPort
	// AllowedHosts, when not empty, is the only set of hosts pages may
	// reach: "example.com" (that host), "*.example.com" (its subdomains),
	// or a literal IP address.
	AllowedHosts []string
	// LookupIP resolves a host name; nil means the system resolver. Tests
	// use it to map a name to a blocked address.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	localOnce  sync.Once
	localAddrs map[netip.Addr]bool
}

// ParseNetworks reads a comma-separated list of CIDRs, bare IP addresses
// and host:port endpoints (as RUN_BLOCKED_NETWORKS holds). Endpoint host
// names are resolved now with lookup (nil: the system resolver).
func ParseNetworks(ctx context.Context, s string, lookup func(context.Context, string) ([]netip.Addr, error)) ([]netip.Prefix, []netip.AddrPort, error) {
	var nets []netip.Prefix
	var eps []netip.AddrPort
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			nets = append(nets, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		got, err := ParseEndpoint(ctx, item, lookup)
		if err != nil {
			return nil, nil, fmt.Errorf("%q: want a CIDR, an IP address or host:port: %w", item, err)
		}
		eps = append(eps, got...)
	}
	return nets, eps, nil
}

// ParseEndpoint resolves host:port to the address:port pairs it names.
func ParseEndpoint(ctx context.Context, hostport string, lookup func(context.Context, string) ([]netip.Addr, error)) ([]netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if lookup == nil {
		lookup = systemLookup
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = lookup(ctx, host); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
	}
	return out, nil
}

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// lookup resolves host with the policy's resolver.
func (p *Policy) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	if p.LookupIP != nil {
		return p.LookupIP(ctx, host)
	}
	return systemLookup(ctx, host)
}

// CheckHost applies AllowedHosts to a host name or literal address; target
// is what the Blocked error names.
func (p *Policy) CheckHost(host, target string) *Blocked {
	if len(p.AllowedHosts) == 0 {
		return nil
	}
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	for _, pat := range p.AllowedHosts {
		pat = strings.ToLower(strings.TrimSpace(pat))
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return nil
			}
			continue
		}
		if h == pat {
			return nil
		}
	}
	return &Blocked{Rule: RuleHost, Target: target, Reason: "not in RUN_ALLOWED_HOSTS"}
}

// CheckAddr applies BlockedNetworks and BlockedEndpoints to a resolved
// address; target is what the Blocked error names.
func (p *Policy) CheckAddr(ap netip.AddrPort, target string) *Blocked {
	a := ap.Addr().Unmap()
	if a.IsUnspecified() {
		// Connecting to 0.0.0.0 or :: reaches this host's own services,
		// round any rule written for loopback; no web page lives there.
		return &Blocked{Rule: RuleNetwork, Target: target, Reason: "the unspecified address " + a.String() + " is this host"}
	}
	for _, n := range p.BlockedNetworks {
		if n.Contains(a) {
			return &Blocked{Rule: RuleNetwork, Target: target, Reason: "RUN_BLOCKED_NETWORKS " + n.String()}
		}
	}
	for _, e := range p.BlockedEndpoints {
		if e.Port() != ap.Port() {
			continue
		}
		ea := e.Addr().Unmap()
		if ea == a || ((ea.IsLoopback() || ea.IsUnspecified()) && p.isLocal(a)) {
			return &Blocked{Rule: RuleEndpoint, Target: target, Reason: "the worker's own service at " + e.String()}
		}
	}
	return nil
}

// isLocal reports whether a is an address of this host.
func (p *Policy) isLocal(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	p.localOnce.Do(func() {
		p.localAddrs = map[netip.Addr]bool{}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return
		}
		for _, ia := range addrs {
			if n, ok := ia.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(n.IP); ok {
					p.localAddrs[x.Unmap()] = true
				}
			}
		}
	})
	return p.localAddrs[a]
}

// DialContext connects to address (host:port) as the policy allows: the
// host must pass AllowedHosts, and only resolved addresses that pass
// CheckAddr are dialled. The socket's Control hook checks the address once
// more just before connect, so nothing that resolves differently later can
// slip through. A refusal is a *Blocked (errors.As).
func (p *Policy) DialContext(ctx context.Context, network, address, target string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", address)
	}
	if b := p.CheckHost(host, target); b != nil {
		return nil, b
	}
	addrs, err := p.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var firstBlock *Blocked
	var lastErr error
	d := &net.Dialer{Control: p.control(target)}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		if b := p.CheckAddr(ap, target); b != nil {
			if firstBlock == nil {
				firstBlock = b
			}
			continue
		}
		c, err := d.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		lastErr = err
		var b *Blocked
		if errors.As(err, &b) && firstBlock == nil {
			firstBlock = b
		}
	}
	if lastErr == nil && firstBlock != nil {
		return nil, firstBlock
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%s: no addresses", host)
	}
	return nil, lastErr
}

// control is the last check before connect(2): the address the kernel is
// about to connect to.
func (p *Policy) control(target string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("unexpected dial address %q", address)
		}
		if b := p.CheckAddr(ap, target); b != nil {
			return b
		}
		return nil
	}
}
