package browser

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-rod/rod/lib/proto"
)

// goTo navigates the page to u and waits for the new document's
// DOMContentLoaded (not for network idle).
func (s *session) goTo(ctx context.Context, u string) error {
	if err := s.guard.checkNavigation(u); err != nil {
		return err
	}
	before := s.state()
	cctx, cancel := s.callCtx(ctx)
	res, err := proto.PageNavigate{URL: u}.Call(s.client(cctx))
	cancel()
	if err != nil {
		return fmt.Errorf("navigate to %s: %w", u, s.callError(ctx, err))
	}
	if res.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", u, s.guard.explain(u, res.ErrorText))
	}
	if res.LoaderID == "" {
		return nil // same-document navigation: nothing loads
	}
	if err := s.waitState(ctx, func(n navState) bool { return n.committed > before.committed && n.docReady }); err != nil {
		return fmt.Errorf("navigate to %s: waiting for DOMContentLoaded: %w", u, err)
	}
	return nil
}

// settle waits, after an action, for a navigation the action started to
// reach DOMContentLoaded. before is the state from just before the action.
func (s *session) settle(ctx context.Context, before navState) error {
	// A round trip through the renderer, so that a navigation the action
	// asked for has been reported by the time we look.
	if err := s.evalExpr(ctx, "0", nil); err != nil && !isContextGone(err) {
		return err
	}
	n := s.state()
	if n.started == before.started && n.committed == before.committed {
		return nil
	}
	err := s.waitState(ctx, func(n navState) bool {
		return (n.committed > before.committed && n.docReady) || n.stopped > before.stopped
	})
	if err != nil {
		return fmt.Errorf("waiting for the page the action opened to load: %w", err)
	}
	return nil
}

// isContextGone reports errors of scripts whose document went away while
// they ran (a navigation), which callers retry or ignore.
func isContextGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "context was destroyed") || strings.Contains(msg, "Cannot find context") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

// waitURL waits until the page's URL matches want.
func (s *session) waitURL(ctx context.Context, want string) error {
	return s.waitState(ctx, func(n navState) bool { return sameURL(n.url, want) })
}

// waitLoaded waits until no main-frame load is pending past
// DOMContentLoaded.
func (s *session) waitLoaded(ctx context.Context) error {
	return s.waitState(ctx, func(n navState) bool { return n.docReady || n.stopped >= n.started })
}

// history moves back (delta -1) or forward (+1) in the page's history.
func (s *session) history(ctx context.Context, delta int) error {
	cctx, cancel := s.callCtx(ctx)
	h, err := proto.PageGetNavigationHistory{}.Call(s.client(cctx))
	cancel()
	if err != nil {
		return fmt.Errorf("read history: %w", s.callError(ctx, err))
	}
	i := h.CurrentIndex + delta
	if i < 0 || i >= len(h.Entries) {
		return errors.New("no history entry to go to")
	}
	entry := h.Entries[i]
	before := s.state()
	if err := s.do(ctx, proto.PageNavigateToHistoryEntry{EntryID: entry.ID}); err != nil {
		return fmt.Errorf("go to history entry %s: %w", entry.URL, err)
	}
	err = s.waitState(ctx, func(n navState) bool {
		if !sameURL(n.url, entry.URL) && n.url != entry.URL {
			return false
		}
		return n.committed == before.committed || n.docReady
	})
	if err != nil {
		return fmt.Errorf("go to history entry %s: %w", entry.URL, err)
	}
	return nil
}

// sameURL compares URLs whole (scheme, host, port, path, query), ignoring
// only the fragment and a trailing slash of the path.
func sameURL(a, b string) bool {
	return canonicalURL(a) == canonicalURL(b)
}

func canonicalURL(s string) string {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil {
		s, _, _ = strings.Cut(s, "#")
		return strings.TrimSuffix(s, "/")
	}
	u.Fragment, u.RawFragment = "", ""
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	if u.Path == "" && u.Host != "" {
		u.Path = "/"
	}
	out := u.String()
	if u.RawQuery == "" {
		out = strings.TrimSuffix(out, "/")
	} else {
		p, q, _ := strings.Cut(out, "?")
		out = strings.TrimSuffix(p, "/") + "?" + q
	}
	return out
}
