package main

import (
	"fmt"
	nethttp "net/http"
	"strings"
	"testing"
	"time"
)

// secondAPI starts another API process of the fleet and returns a client of
// it holding token.
func (f *fleet) secondAPI(token string) *devNode {
	f.t.Helper()
	port := freePort(f.t)
	f.start("api", fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
	n := &devNode{t: f.t, base: fmt.Sprintf("http://127.0.0.1:%d", port), token: token}
	eventually(f.t, 30*time.Second, "second API healthy", func() (bool, string) {
		resp, err := nethttp.Get(n.base + "/api/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return n
}

// TestRevokedTokenStopsOnEveryAPINode revokes (then deletes) a token through
// one API process while another, which has the token cached from a request
// a moment before, keeps being asked: the other must refuse it within the
// cache's second (pub/sub makes it at once), and never accept it again.
func TestRevokedTokenStopsOnEveryAPINode(t *testing.T) {
	f := newFleet(t)
	for _, how := range []string{"revoke", "delete"} {
		t.Run(how, func(t *testing.T) {
			var tok struct {
				ID    string `json:"id"`
				Token string `json:"token"`
			}
			f.api.call("POST", "/api/v1/tokens", map[string]any{"name": "doomed " + how}, 201, &tok)
			if !strings.HasPrefix(tok.Token, "sa_live_") {
				t.Fatalf("created token %+v", tok)
			}
			other := f.secondAPI(tok.Token)
			// Cached on the other node.
			for range 3 {
				if a := other.request("GET", "/api/v1/runs", nil); a.status != 200 {
					t.Fatalf("fresh token on the other node: %s", a)
				}
			}
			if how == "revoke" {
				f.api.call("POST", "/api/v1/tokens/"+tok.ID+"/revoke", nil, 200, nil)
			} else {
				f.api.call("DELETE", "/api/v1/tokens/"+tok.ID, nil, 200, nil)
			}
			done := time.Now()
			eventually(t, 5*time.Second, "revoked token refused on the other node", func() (bool, string) {
				a := other.request("GET", "/api/v1/runs", nil)
				return a.status == 401, a.String()
			})
			t.Logf("%s: refused on the other node %s after the %s answered", how, time.Since(done).Round(time.Millisecond), how)
			for range 5 {
				if a := other.request("GET", "/api/v1/runs", nil); a.status != 401 {
					t.Fatalf("revoked token accepted again: %s", a)
				}
			}
			if a := (&devNode{t: t, base: f.api.base, token: tok.Token}).request("GET", "/api/v1/runs", nil); a.status != 401 {
				t.Fatalf("revoked token accepted by the node that revoked it: %s", a)
			}
		})
	}
}

// TestRateLimitHoldsAcrossAPINodes spends a token's budget through two API
// processes in turn: together they grant exactly the limit per minute.
func TestRateLimitHoldsAcrossAPINodes(t *testing.T) {
	const limit = 12
	f := newFleet(t, fmt.Sprintf("RATE_LIMIT_PER_MINUTE=%d", limit))
	other := f.secondAPI(f.api.token)
	for attempt := 0; ; attempt++ {
		// A fresh token per attempt: its budget is untouched.
		out, err := f.command("token", "create", "--email", "fleet@example.com", "--name", fmt.Sprint("limit ", attempt)).Output()
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(string(out))
		nodes := []*devNode{{t: t, base: f.api.base, token: tok}, {t: t, base: other.base, token: tok}}
		window := time.Now().Unix() / 60
		ok, limited := 0, 0
		for i := range 2*limit + 4 {
			a := nodes[i%2].request("GET", "/api/v1/runs", nil)
			switch a.status {
			case 200:
				ok++
			case 429:
				limited++
			default:
				t.Fatalf("request %d: %s", i, a)
			}
		}
		if time.Now().Unix()/60 != window {
			// The minute turned during the attempt: a fixed window resets then.
			if attempt < 3 {
				continue
			}
			t.Fatal("the minute kept turning")
		}
		if ok != limit || limited != limit+4 {
			t.Fatalf("two nodes granted %d and refused %d of %d requests; limit %d per minute", ok, limited, 2*limit+4, limit)
		}
		return
	}
}
