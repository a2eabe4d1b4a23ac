package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-rod/rod/lib/proto"
)

// Video settings.
const (
	// videoFPS is the output frame rate; frames are repeated to fill it.
	videoFPS = 10
	// videoQuality is the JPEG quality of screencast frames.
	videoQuality = 70
	// videoFinishTimeout bounds ffmpeg's encoding of the tail after the run.
	videoFinishTimeout = 60 * time.Second
)

// ErrNoFFmpeg is reported (as Result.VideoError) when a video was asked
// for but ffmpeg is not installed.
var ErrNoFFmpeg = errors.New("video unavailable: ffmpeg not found")

// videoEncoder is an ffmpeg encoder and the container it goes in.
type videoEncoder struct {
	ext  string
	args []string
}

// videoEncoders are tried in order; the first ffmpeg has is used.
func videoEncoders() []struct {
	name string
	enc  videoEncoder
} {
	return []struct {
		name string
		enc  videoEncoder
	}{
		{"libx264", videoEncoder{"mp4", []string{"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"}}},
		{"libvpx-vp9", videoEncoder{"webm", []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "1M", "-pix_fmt", "yuv420p"}}},
		{"libvpx", videoEncoder{"webm", []string{"-c:v", "libvpx", "-deadline", "realtime", "-b:v", "1M"}}},
		{"mpeg4", videoEncoder{"mp4", []string{"-c:v", "mpeg4", "-q:v", "5", "-pix_fmt", "yuv420p"}}},
	}
}

// frame is one screencast image and when it was shown.
type frame struct {
	jpeg []byte
	at   time.Time
	// final is the page captured as the run left it: kept only when its
	// size is the screencast's, and written at least once.
	final bool
}

// videoRecorder turns the page's screencast into a video file: the frames
// are piped to ffmpeg at a constant rate, each repeated until the next one
// arrives, so the video lasts as long as the run did (wall clock).
type videoRecorder struct {
	path   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *bytes.Buffer
	start  time.Time
	frames chan frame
	done   chan error // the writer's outcome
}

// pickEncoder asks ffmpeg which encoders it has; the answer is kept for
// the browser's lifetime.
func (b *Browser) pickEncoder(ffmpeg string) (videoEncoder, error) {
	b.encoderOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-encoders").Output()
		if err != nil {
			b.encoderErr = fmt.Errorf("video unavailable: ffmpeg -encoders: %w", err)
			return
		}
		for _, e := range videoEncoders() {
			if bytes.Contains(out, []byte(" "+e.name+" ")) {
				b.encoder = e.enc
				return
			}
		}
		b.encoderErr = errors.New("video unavailable: ffmpeg has none of libx264, libvpx-vp9, libvpx, mpeg4")
	})
	return b.encoder, b.encoderErr
}

// startVideo starts recording when the options ask for a video. Problems
// never fail the run: they end up in Result.VideoError.
func (r *replay) startVideo(ctx context.Context) {
	if r.opts.VideoDir == "" {
		return
	}
	look := r.lookFFmpeg
	if look == nil {
		look = func() (string, error) { return exec.LookPath("ffmpeg") }
	}
	ffmpeg, err := look()
	if err != nil {
		r.res.VideoError = ErrNoFFmpeg.Error()
		return
	}
	enc, err := r.b.pickEncoder(ffmpeg)
	if err != nil {
		r.res.VideoError = err.Error()
		return
	}
	if err := os.MkdirAll(r.opts.VideoDir, 0o755); err != nil {
		r.res.VideoError = fmt.Sprintf("video unavailable: %v", err)
		return
	}
	path := filepath.Join(r.opts.VideoDir, "run-"+safeName(r.opts.RunID)+"."+enc.ext)
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "image2pipe", "-framerate", fmt.Sprint(videoFPS), "-c:v", "mjpeg", "-i", "pipe:0",
		// Encoders want even dimensions.
		"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-r", fmt.Sprint(videoFPS)}
	args = append(append(args, enc.args...), path)
	cmd := exec.Command(ffmpeg, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.res.VideoError = fmt.Sprintf("video unavailable: %v", err)
		return
	}
	v := &videoRecorder{path: path, cmd: cmd, stdin: stdin, stderr: &bytes.Buffer{},
		frames: make(chan frame, 16), done: make(chan error, 1)}
	cmd.Stderr = v.stderr
	if err := cmd.Start(); err != nil {
		r.res.VideoError = fmt.Sprintf("video unavailable: start ffmpeg: %v", err)
		return
	}
	v.start = time.Now()
	r.s.setFrameSink(v.frames)
	quality := videoQuality
	if err := r.s.do(ctx, proto.PageStartScreencast{Format: proto.PageStartScreencastFormatJpeg, Quality: &quality}); err != nil {
		r.s.setFrameSink(nil)
		close(v.frames)
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.res.VideoError = fmt.Sprintf("video unavailable: start screencast: %v", err)
		return
	}
	go v.write()
	r.video = v
}

// write feeds ffmpeg until frames is closed, then pads to the end time.
// The last frame is written at least once, however short its time.
func (v *videoRecorder) write() {
	var last []byte
	lastOut := false // last was written
	written := 0
	var err error
	fill := func(until time.Time) {
		target := int(until.Sub(v.start).Seconds() * videoFPS)
		for last != nil && written < target && err == nil {
			_, err = v.stdin.Write(last)
			written++
			lastOut = true
		}
	}
	for f := range v.frames {
		if err != nil {
			continue // keep draining so the tracker never blocks
		}
		if f.final && (last == nil || !sameSize(last, f.jpeg)) {
			continue
		}
		fill(f.at)
		last, lastOut = f.jpeg, false
	}
	if err == nil {
		fill(time.Now())
		if last != nil && !lastOut {
			_, err = v.stdin.Write(last)
		}
	}
	v.done <- err
}

// sameSize reports whether two JPEG images have the same dimensions.
func sameSize(a, b []byte) bool {
	ca, err := jpeg.DecodeConfig(bytes.NewReader(a))
	if err != nil {
		return false
	}
	cb, err := jpeg.DecodeConfig(bytes.NewReader(b))
	return err == nil && ca.Width == cb.Width && ca.Height == cb.Height
}

// finalFrame captures the page as the run left it, secrets covered as for
// a screenshot. The screencast sends a frame only after the previous one
// was acknowledged, so on a loaded machine the page's last change may
// still be on its way when the run ends; without this frame the video
// would end on an earlier state of the page.
func (r *replay) finalFrame(ctx context.Context) ([]byte, bool) {
	// A page that does not answer (a dialog open, a hung renderer) costs
	// the run's end at most this.
	ctx, cancelWait := context.WithTimeout(ctx, time.Second)
	defer cancelWait()
	cctx, cancel := r.s.callCtx(ctx)
	defer cancel()
	uncover, err := r.coverSecrets(cctx)
	if err != nil {
		return nil, false
	}
	defer uncover()
	quality := videoQuality
	shot, err := proto.PageCaptureScreenshot{Format: proto.PageCaptureScreenshotFormatJpeg, Quality: &quality}.Call(r.s.client(cctx))
	if err != nil {
		return nil, false
	}
	return shot.Data, true
}

// stopVideo stops the screencast and finishes the file.
func (r *replay) stopVideo() {
	v := r.video
	if v == nil {
		return
	}
	r.video = nil
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	shot, ok := r.finalFrame(ctx)
	_ = r.s.do(ctx, proto.PageStopScreencast{})
	cancel()
	r.s.setFrameSink(nil) // no more sends after this returns
	if ok {
		v.frames <- frame{jpeg: shot, at: time.Now(), final: true}
	}
	close(v.frames)
	werr := <-v.done
	_ = v.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- v.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(videoFinishTimeout):
		_ = v.cmd.Process.Kill()
		err = <-exited
	}
	st, statErr := os.Stat(v.path)
	switch {
	case err != nil || statErr != nil || st.Size() == 0:
		msg := strings.TrimSpace(v.stderr.String())
		if msg == "" && err != nil {
			msg = err.Error()
		}
		if msg == "" && werr != nil {
			msg = werr.Error()
		}
		if msg == "" {
			msg = "no frames recorded"
		}
		r.res.VideoError = "video failed: " + plain(msg)
		_ = os.Remove(v.path)
	default:
		r.res.Video = v.path
	}
}

// setFrameSink routes screencast frames to ch (nil: drop them).
func (s *session) setFrameSink(ch chan frame) {
	s.frameMu.Lock()
	s.frames = ch
	s.frameMu.Unlock()
}

// screencastFrame acknowledges a frame and hands it to the recorder.
func (s *session) screencastFrame(e *proto.PageScreencastFrame) {
	ctx, cancel := context.WithTimeout(s.stopped, closeTimeout)
	_ = proto.PageScreencastFrameAck{SessionID: e.SessionID}.Call(s.client(ctx))
	cancel()
	at := time.Now()
	if e.Metadata != nil && e.Metadata.Timestamp > 0 {
		if t := e.Metadata.Timestamp.Time(); t.Before(at) && at.Sub(t) < time.Minute {
			at = t
		}
	}
	s.frameMu.Lock()
	defer s.frameMu.Unlock()
	if s.frames == nil {
		return
	}
	select {
	case s.frames <- frame{jpeg: e.Data, at: at}:
	default: // the encoder is behind: skip this frame, the last one repeats
	}
}

// frameMu guards frames; kept apart from mu, which guards navigation state.
type frameSink struct {
	frameMu sync.Mutex
	frames  chan frame
}
