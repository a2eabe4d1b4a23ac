package browser_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/recording"
)

// Replaying a recording file in a pooled browser: launch once, then one
// Replay per run, each in its own incognito context.
func Example() {
	ctx := context.Background()
	b, err := browser.Launch(ctx, browser.LaunchOptions{Headless: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	data, err := os.ReadFile("recording.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := recording.Parse(data)
	if err != nil {
		fmt.Println(err) // lists every problem as path: message
		return
	}
	res := b.Replay(ctx, recording.Normalize(rec), browser.Options{
		RunID:          "run-1",
		Timeout:        10 * time.Second,
		TimingEnabled:  true,
		TimingMode:     browser.TimingFast,
		ScreenshotMode: browser.ScreenshotOnFailure,
		ScreenshotDir:  "screenshots",
	}, nil)
	switch {
	case res.Crashed:
		fmt.Println("infrastructure failure, retry on a fresh browser:", res.ErrorMessage)
	case res.Status != browser.RunPassed:
		fmt.Println("test failed:", res.ErrorMessage)
	default:
		fmt.Println("passed in", res.DurationMs, "ms")
	}
}
