package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// prepare applies the recording's viewport, scale factor and user agent.
func (s *session) prepare(ctx context.Context, rec *recording.Recording) error {
	w, h := rec.Viewport.Width, rec.Viewport.Height
	if !(w > 0) || !(h > 0) {
		w, h = DefaultViewportWidth, DefaultViewportHeight
	}
	scale := rec.DevicePixelRatio
	if !(scale > 0) || scale > 10 {
		scale = 1
	}
	if err := s.do(ctx, proto.EmulationSetDeviceMetricsOverride{
		Width: int(w), Height: int(h), DeviceScaleFactor: scale,
	}); err != nil {
		return fmt.Errorf("set viewport: %w", err)
	}
	if rec.UserAgent != "" {
		if err := s.do(ctx, proto.EmulationSetUserAgentOverride{UserAgent: rec.UserAgent}); err != nil {
			return fmt.Errorf("set user agent: %w", err)
		}
	}
	return nil
}

// screenshotName is the file name of the screenshot after action index.
func screenshotName(runID, browserName string, index int, actionID string) string {
	return fmt.Sprintf("%s-%s-%03d-%s.png", safeName(runID), safeName(browserName), index+1, safeName(actionID))
}

// safeName keeps a file-name component inside its folder.
func safeName(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r == '/' || r == '\\' || r == 0 || (r == '.' && i == 0) {
			out[i] = '_'
		}
	}
	return string(out)
}

// screenshot saves a viewport PNG after an executed action when the mode
// asks for one, and returns its path ("" when none was taken).
func (r *replay) screenshot(ctx context.Context, index int, a *recording.Action, status string) string {
	mode, dir := r.opts.ScreenshotMode, r.opts.ScreenshotDir
	if dir == "" || mode == ScreenshotNever || (mode == ScreenshotOnFailure && status == StatusSuccess) {
		return ""
	}
	if mode != ScreenshotAlways && mode != ScreenshotOnFailure {
		return ""
	}
	// The action's own context may have run out; give the capture its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	cctx, ccancel := r.s.callCtx(sctx)
	defer ccancel()
	uncover, err := r.coverSecrets(cctx)
	if err != nil {
		return "" // no screenshot rather than one that may show a secret
	}
	shot, err := proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatPng}.Call(r.s.client(cctx))
	uncover()
	if err != nil {
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	path := filepath.Join(dir, screenshotName(r.opts.RunID, r.opts.BrowserName, index, a.ID))
	if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
		return ""
	}
	return path
}
