package browser

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
	"time"
)

// countingWriter counts what was written, frame by frame.
type countingWriter struct{ frames [][]byte }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.frames = append(w.frames, append([]byte(nil), p...))
	return len(p), nil
}
func (w *countingWriter) Close() error { return nil }

func jpegOf(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The page's last change arrives in the same frame slot as the run's end:
// the video must still end on it. A final capture of another size than the
// screencast's is left out, since ffmpeg's input takes one size.
func TestVideoEndsOnTheLastFrame(t *testing.T) {
	first := jpegOf(t, 16, 8, color.White)
	changed := jpegOf(t, 16, 8, color.Black)
	final := jpegOf(t, 16, 8, color.Gray{Y: 128})
	odd := jpegOf(t, 32, 8, color.Black)
	run := func(frames ...frame) [][]byte {
		out := &countingWriter{}
		// The last frame comes half a frame slot (50 ms at 10 fps) into
		// the slot the run ends in.
		v := &videoRecorder{stdin: out, start: frames[len(frames)-1].at.Add(-time.Second - 50*time.Millisecond), frames: make(chan frame, len(frames)), done: make(chan error, 1)}
		for _, f := range frames {
			v.frames <- f
		}
		close(v.frames)
		v.write()
		if err := <-v.done; err != nil {
			t.Fatal(err)
		}
		return out.frames
	}
	start := time.Now().Add(-time.Second)
	got := run(frame{jpeg: first, at: start}, frame{jpeg: changed, at: time.Now()})
	if len(got) == 0 || !bytes.Equal(got[len(got)-1], changed) {
		t.Fatalf("the video ends on another frame than the page's last change (%d frames)", len(got))
	}
	got = run(frame{jpeg: first, at: start}, frame{jpeg: final, at: time.Now(), final: true})
	if len(got) == 0 || !bytes.Equal(got[len(got)-1], final) {
		t.Fatalf("the video does not end on the final capture (%d frames)", len(got))
	}
	got = run(frame{jpeg: first, at: start}, frame{jpeg: odd, at: time.Now(), final: true})
	for _, f := range got {
		if bytes.Equal(f, odd) {
			t.Fatal("a final capture of another size was written")
		}
	}
	if len(got) == 0 {
		t.Fatal("no frame written")
	}
}
