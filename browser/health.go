package browser

import (
	"encoding/json"
	"strconv"
)

// SelectorHealth says how an action's element was found, so that a run
// that passed can still warn of the selectors that will break next: the
// recorded primary strategy no longer matches (stale) or matches more than
// one element (ambiguous), and a later strategy saved the action.
type SelectorHealth struct {
	// Primary is the strategy tried first (the recording's first choice),
	// labelled as in ActionResult.SelectorUsed.
	Primary string `json:"primary"`
	// Strategy is the strategy that matched; "" when none did.
	Strategy string `json:"strategy"`
	// Position is Strategy's 0-based position in the priority order (0 is
	// the primary); -1 when nothing matched.
	Position int `json:"position"`
	// Matches is how many elements Strategy matched.
	Matches int `json:"matches"`
	// Failed lists the strategies tried before the one that matched (all
	// of them when none did), each with why: "id (no match)",
	// "css (3 matches, needs exactly one)", "css (invalid: ...)".
	Failed []string `json:"failed"`
	// Stale is set when the primary strategy matched no element (or could
	// not run); Ambiguous when it matched more than one.
	Stale     bool `json:"stale"`
	Ambiguous bool `json:"ambiguous"`
}

// HealthNote names one action in a run's selector-health summary.
type HealthNote struct {
	ActionID string `json:"actionId"`
	Index    int    `json:"index"`
	Primary  string `json:"primary"`
	// Strategy is what matched instead ("" when nothing did).
	Strategy string `json:"strategy"`
}

// HealthSummary is a run's selector health: how many located actions were
// found by their primary strategy, by a fallback, or not at all, and which
// actions have a stale or ambiguous primary selector.
type HealthSummary struct {
	Located   int          `json:"located"`
	Primary   int          `json:"primary"`
	Fallback  int          `json:"fallback"`
	NotFound  int          `json:"notFound"`
	Stale     []HealthNote `json:"stale"`
	Ambiguous []HealthNote `json:"ambiguous"`
}

// healthOf reads the locator's report for target t.
func healthOf(t target, loc *located) *SelectorHealth {
	if len(t.Strategies) == 0 || loc == nil {
		return nil
	}
	h := &SelectorHealth{Primary: t.Strategies[0].Label, Position: -1, Failed: []string{}}
	matched := loc.State != "notfound" && loc.Index >= 0 && loc.Index < len(t.Strategies)
	for i, n := range loc.Counts {
		if i >= len(t.Strategies) {
			break
		}
		if matched && i == loc.Index {
			h.Strategy, h.Position, h.Matches = t.Strategies[i].Label, i, n
			break
		}
		if i < len(loc.Tried) {
			h.Failed = append(h.Failed, loc.Tried[i])
		} else {
			h.Failed = append(h.Failed, t.Strategies[i].Label+" ("+strconv.Itoa(n)+" matches)")
		}
	}
	if len(loc.Counts) > 0 {
		h.Stale = loc.Counts[0] <= 0
		h.Ambiguous = loc.Counts[0] > 1
	}
	return h
}

// noteLocate keeps the selector health of the latest location attempt of
// the current action (replay reads it when the action ends).
func (s *session) noteLocate(t target, loc *located) {
	if h := healthOf(t, loc); h != nil {
		s.health = h
	}
}

// takeHealth returns the current action's selector health and forgets it.
func (s *session) takeHealth() *SelectorHealth {
	h := s.health
	s.health = nil
	return h
}

// summarizeHealth builds a run's summary from its action results.
func summarizeHealth(actions []ActionResult) HealthSummary {
	sum := HealthSummary{Stale: []HealthNote{}, Ambiguous: []HealthNote{}}
	for _, a := range actions {
		h := a.SelectorHealth
		if h == nil {
			continue
		}
		sum.Located++
		switch {
		case h.Position == 0:
			sum.Primary++
		case h.Position > 0:
			sum.Fallback++
		default:
			sum.NotFound++
		}
		note := HealthNote{ActionID: a.ActionID, Index: a.Index, Primary: h.Primary, Strategy: h.Strategy}
		if h.Stale {
			sum.Stale = append(sum.Stale, note)
		}
		if h.Ambiguous {
			sum.Ambiguous = append(sum.Ambiguous, note)
		}
	}
	return sum
}

// MarshalJSON writes empty lists as [] (a run that never started has none).
func (h HealthSummary) MarshalJSON() ([]byte, error) {
	type plain HealthSummary
	if h.Stale == nil {
		h.Stale = []HealthNote{}
	}
	if h.Ambiguous == nil {
		h.Ambiguous = []HealthNote{}
	}
	return json.Marshal(plain(h))
}
