package recording

import (
	"fmt"
	"strings"
)

// The service URL policy. A service run (api, worker, dev) opens only web
// pages: a recording must not be a way to read the worker's own files
// (file:), its browser's internals (chrome:, devtools:, ...) or anything
// else that is not the web. `saveaction run` on one's own machine does not
// apply it unless asked to.

// BlockedSchemes are refused everywhere in a service run, for navigations
// and for anything a page loads.
func BlockedSchemes() []string {
	return []string{"file", "chrome", "chrome-untrusted", "devtools", "view-source", "chrome-extension", "filesystem", "chrome-search"}
}

// URLScheme returns the lower-cased scheme of u as a browser reads it
// (leading and trailing spaces and control characters dropped, tabs and
// newlines inside ignored), or "" for a relative URL.
func URLScheme(u string) string {
	u = strings.TrimFunc(u, func(r rune) bool { return r <= ' ' })
	u = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(u)
	i := strings.IndexByte(u, ':')
	if i <= 0 {
		return ""
	}
	for j, c := range u[:i] {
		alpha := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !alpha && (j == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return ""
		}
	}
	return strings.ToLower(u[:i])
}

// CheckNavigationURL applies the service policy to a URL the browser is
// asked to open (a start URL or a navigation target): http and https, and
// about:blank. A relative URL (no scheme) passes; it resolves against a
// page that passed. The error reads "blocked by policy: <url> (...)".
func CheckNavigationURL(u string) error {
	switch URLScheme(u) {
	case "", "http", "https":
		return nil
	case "about":
		if strings.EqualFold(strings.TrimSpace(u), "about:blank") {
			return nil
		}
	}
	return &PolicyError{URL: u, Reason: "only http and https pages may be opened"}
}

// CheckResourceURL applies the service policy to a URL a page loads (a
// frame, subresource, fetch, WebSocket or download): the schemes of
// navigations plus data:, blob: and about:, and never file:, chrome:,
// devtools:, view-source:, chrome-extension: or filesystem:.
func CheckResourceURL(u string) error {
	s := URLScheme(u)
	for _, b := range BlockedSchemes() {
		if s == b {
			return &PolicyError{URL: u, Reason: s + ": URLs are not allowed"}
		}
	}
	return nil
}

// PolicyError is a URL the service policy refuses.
type PolicyError struct {
	URL    string
	Reason string
}

func (e *PolicyError) Error() string {
	return "blocked by policy: " + shortURL(e.URL) + " (" + e.Reason + ")"
}

// shortURL keeps a refused URL readable in a message.
func shortURL(u string) string {
	u = strings.TrimSpace(u)
	if len(u) > 200 {
		return u[:200] + "..."
	}
	return u
}

// CheckURLPolicy returns the problems of a parsed recording under the
// service URL policy: the start URL, and every action's url and to, each
// at its JSON path (url, actions[3].to).
func CheckURLPolicy(r *Recording) []Problem {
	if r == nil {
		return nil
	}
	var ps []Problem
	check := func(path, u string) {
		if err := CheckNavigationURL(u); err != nil {
			ps = append(ps, Problem{Path: path, Message: fmt.Sprintf("%s URLs are not allowed: only http and https pages may be opened", URLScheme(u))})
		}
	}
	check("url", r.URL)
	for i := range r.Actions {
		a := &r.Actions[i]
		check(fmt.Sprintf("actions[%d].url", i), a.URL)
		check(fmt.Sprintf("actions[%d].to", i), a.To)
	}
	return ps
}
