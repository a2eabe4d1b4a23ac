package browser

import (
	"testing"
)

func TestSmokeClick(t *testing.T) {
	res, got := replayAndRead(t, newRec(fixtureURL("/fixture.html"), clickID("click-btn")), quick(), text("#click-result"))
	wantStatus(t, res, RunPassed)
	if got[0] != "Button clicked successfully!" {
		t.Fatalf("click result %q", got[0])
	}
	t.Log(summary(res), res.DurationMs)
}
