package browser

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saveaction/runner/recording"
)

// maskPage has a field at a fixed box and a line that echoes what is
// typed into it (as a "Welcome, <name>" would).
const maskPage = `<style>body{margin:0;background:#fff;font:24px sans-serif}
#secret{position:absolute;left:20px;top:20px;width:300px;height:40px;font-size:24px;border:1px solid #888;background:#fff;color:#000}
#echo{position:absolute;left:20px;top:100px;width:600px;height:40px;color:#000}</style>
<input id="secret" type="text"><div id="echo"></div>
<script>document.getElementById('secret').addEventListener('input', (e) => {
	document.getElementById('echo').textContent = e.target.value; });</script>`

const secretValue = "hunter2-SECRET-VALUE"

// pixelCounts counts the pixels of a region: near black, near white, and the
// rest (the anti-aliased edges of glyphs).
func pixelCounts(img image.Image, x0, y0, x1, y1 int) (black, white, other int) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			switch {
			case r < 0x1000 && g < 0x1000 && b < 0x1000:
				black++
			case r > 0xf000 && g > 0xf000 && b > 0xf000:
				white++
			default:
				other++
			}
		}
	}
	return
}

func TestSecretsMaskedInScreenshotsAndMessages(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	page := serveOn(t, "127.0.0.1:0", html(maskPage))
	shots := func(sensitive bool) (*Result, image.Image) {
		t.Helper()
		in := input(recording.Selector{ID: "secret"}, secretValue)
		in.IsSensitive = sensitive
		// The checkpoint fails and would quote the echoed secret.
		rec := newRec(page.URL+"/", in, checkText("#echo", "something else"))
		opts := quick()
		opts.ScreenshotMode, opts.ScreenshotDir = ScreenshotAlways, t.TempDir()
		opts.ContinueOnError = true
		res := replayWith(t, b, rec, opts)
		if len(res.Screenshots) != 2 {
			t.Fatalf("screenshots %v; %s", res.Screenshots, summary(res))
		}
		data, err := os.ReadFile(res.Screenshots[1])
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return res, img
	}

	res, img := shots(true)
	// The field's box (inside its border) is black all over.
	if black, white, other := pixelCounts(img, 22, 22, 318, 58); white+other > 0 {
		t.Errorf("field not blacked out: %d black, %d white, %d other pixels", black, white, other)
	}
	// The echoed text is covered: no glyph edges remain on its line.
	if _, _, other := pixelCounts(img, 20, 100, 620, 140); other > 0 {
		t.Errorf("echoed secret still drawn: %d glyph pixels", other)
	}
	msg := res.ErrorMessage + summary(res)
	if strings.Contains(msg, secretValue) || !strings.Contains(msg, redactedText) {
		t.Errorf("secret not redacted from the messages: %s", msg)
	}

	// Control: the same run with the input not sensitive shows the text,
	// so the checks above can fail.
	res, img = shots(false)
	if _, white, _ := pixelCounts(img, 22, 22, 318, 58); white == 0 {
		t.Error("control: the unmasked field has no white pixels")
	}
	if _, _, other := pixelCounts(img, 20, 100, 620, 140); other == 0 {
		t.Error("control: the echoed text is not drawn")
	}
	if !strings.Contains(res.ErrorMessage, secretValue) {
		t.Errorf("control: message %q does not quote the (not secret) value", res.ErrorMessage)
	}
}

func TestVariablesAreSecrets(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	page := serveOn(t, "127.0.0.1:0", html(maskPage))
	in := input(recording.Selector{ID: "secret"}, "${PASSWORD}")
	opts := quick()
	opts.Variables = map[string]string{"PASSWORD": "pa55-from-variable"}
	// The failed check quotes the field's value, which came from the
	// variable.
	sel := recording.Action{Type: recording.TypeCheckpoint, CheckType: "elementHasValue", Selector: &recording.Selector{ID: "secret"}, ExpectedValue: "x"}
	res := replayWith(t, b, newRec(page.URL+"/", in, sel), opts)
	if res.Status != RunFailed {
		t.Fatalf("status %s", res.Status)
	}
	if strings.Contains(res.ErrorMessage, "pa55-from-variable") || !strings.Contains(res.ErrorMessage, redactedText) {
		t.Errorf("variable value not redacted: %q", res.ErrorMessage)
	}
}

// darkShare is the share of the pixels of a region darker than mid-grey.
func darkShare(img image.Image, x0, y0, x1, y1 int) float64 {
	dark, all := 0, 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if (r+g+b)/3 < 0x8000 {
				dark++
			}
			all++
		}
	}
	return float64(dark) / float64(all)
}

// TestSecretsMaskedInVideo records a run that types a secret the page
// echoes, and looks at every frame of the video: the echoed text is never
// drawn (its line is either empty, before the input, or black), while in
// the control run it is.
func TestSecretsMaskedInVideo(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("no ffmpeg")
	}
	page := serveOn(t, "127.0.0.1:0", html(maskPage))
	// textShown counts the frames in which the echo line shows glyphs:
	// partly dark, where an empty line is white and a masked one black.
	textShown := func(sensitive bool) (shown, frames int) {
		in := input(recording.Selector{ID: "secret"}, secretValue)
		in.IsSensitive = sensitive
		// A hover keeps the page on screen a moment after the input.
		hold := recording.Action{Type: recording.TypeHover, Selector: &recording.Selector{ID: "echo"}}
		opts := patient()
		opts.VideoDir = t.TempDir()
		res := replayWith(t, b, newRec(page.URL+"/", in, hold, hold, hold), opts)
		wantStatus(t, res, RunPassed)
		if res.Video == "" {
			t.Fatalf("no video: %s", res.VideoError)
		}
		dir := t.TempDir()
		if out, err := exec.Command(ffmpeg, "-loglevel", "error", "-i", res.Video, "-vf", "fps=10", filepath.Join(dir, "f%04d.png")).CombinedOutput(); err != nil {
			t.Fatalf("extract frames: %v\n%s", err, out)
		}
		names, _ := filepath.Glob(filepath.Join(dir, "*.png"))
		for _, name := range names {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if d := darkShare(img, 24, 104, 200, 126); d > 0.03 && d < 0.7 {
				shown++
			}
			frames++
		}
		return shown, frames
	}
	shown, frames := textShown(true)
	t.Logf("masked run: text shown in %d of %d frames", shown, frames)
	if frames == 0 || shown > 0 {
		t.Errorf("masked run: the echoed secret shows in %d of %d frames", shown, frames)
	}
	shown, frames = textShown(false)
	t.Logf("control run: text shown in %d of %d frames", shown, frames)
	if shown == 0 {
		t.Errorf("control: the echoed text shows in none of %d frames, so the check cannot fail", frames)
	}
}
