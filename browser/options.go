package browser

import "time"

// Defaults of Options.
const (
	// DefaultTimeout bounds each action.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxActionDelay caps each timing wait.
	DefaultMaxActionDelay = 30 * time.Second
	// DefaultViewportWidth and DefaultViewportHeight apply when a recording
	// has no usable viewport.
	DefaultViewportWidth  = 1280
	DefaultViewportHeight = 720
)

// Timing modes and their scale of recorded delays.
const (
	TimingRealistic = "realistic" // scale 1
	TimingFast      = "fast"      // scale 0.25
	TimingInstant   = "instant"   // no waits
)

// Screenshot modes.
const (
	ScreenshotNever     = "never"
	ScreenshotOnFailure = "on-failure"
	ScreenshotAlways    = "always"
)

// Options configure one replay. The zero value replays with real-clock
// realistic timing disabled (TimingEnabled false), 30 s per action, no
// screenshots and no video.
type Options struct {
	// RunID names screenshot and video files.
	RunID string
	// BrowserName is used in screenshot file names; "" means "chromium".
	BrowserName string

	// Timeout bounds each action (locating, waiting, acting and the
	// navigation it starts); 0 means DefaultTimeout.
	Timeout time.Duration

	// TimingEnabled replays the recorded pauses between actions, scaled by
	// TimingMode (realistic 1, fast 0.25, instant 0; "" means realistic) and
	// divided by SpeedMultiplier (0 means 1; 2 is twice as fast). Each wait
	// is capped at MaxActionDelay (0 means DefaultMaxActionDelay). Time spent
	// executing earlier actions counts toward the wait.
	TimingEnabled   bool
	TimingMode      string
	SpeedMultiplier float64
	MaxActionDelay  time.Duration

	// ContinueOnError keeps running after a failed action instead of
	// skipping the rest with "previous action failed".
	ContinueOnError bool
	// AssertAutoCheckpoints asserts checkpoints recorded with auto: true;
	// otherwise they are skipped with reason "auto checkpoint".
	AssertAutoCheckpoints bool

	// Variables fill `${NAME}` placeholders and variableName inputs.
	Variables map[string]string

	// ScreenshotMode is never, on-failure or always ("" means never).
	// Screenshots are written to ScreenshotDir (created if missing); an
	// empty ScreenshotDir disables them.
	ScreenshotMode string
	ScreenshotDir  string

	// VideoDir receives run-<RunID>.mp4 (or .webm); "" means no video.
	VideoDir string

	// FilesDir is the folder file-input paths are relative to; "" means
	// the working directory.
	FilesDir string

	// Clock is used for timing waits and timestamps; nil means the real
	// clock. Action timeouts always use real time.
	Clock Clock
}

// Clock tells the time and waits; tests inject a fake one to check timing
// without sleeping.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxActionDelay <= 0 {
		o.MaxActionDelay = DefaultMaxActionDelay
	}
	if o.SpeedMultiplier <= 0 {
		o.SpeedMultiplier = 1
	}
	if o.TimingMode == "" {
		o.TimingMode = TimingRealistic
	}
	if o.ScreenshotMode == "" {
		o.ScreenshotMode = ScreenshotNever
	}
	if o.BrowserName == "" {
		o.BrowserName = "chromium"
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}

// timingScale is the factor applied to recorded delays; 0 means no waits.
func (o Options) timingScale() float64 {
	if !o.TimingEnabled {
		return 0
	}
	var s float64
	switch o.TimingMode {
	case TimingFast:
		s = 0.25
	case TimingInstant:
		return 0
	default:
		s = 1
	}
	return s / o.SpeedMultiplier
}
