package browser

import "context"

// videoRecorder records the run as a video (see startVideo).
type videoRecorder struct{}

func (r *replay) startVideo(ctx context.Context) {
	if r.opts.VideoDir == "" {
		return
	}
	r.res.VideoError = "video unavailable: not implemented yet"
}

func (r *replay) stopVideo() {}
