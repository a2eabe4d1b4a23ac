package browser

import (
	"bytes"
	"image"
	"image/png"
	"os"
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
