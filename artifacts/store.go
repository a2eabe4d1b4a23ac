// Package artifacts stores the files a run leaves behind (its video and
// screenshots) under stable keys, in a local folder or an S3-compatible
// bucket, so any API node can serve any worker's files (DESIGN.md rule 9).
package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"time"
)

// ErrNotFound is returned when no object has the key.
var ErrNotFound = errors.New("artifact not found")

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	ModTime     time.Time
	ETag        string // quoted, ready for the ETag header
	ContentType string
}

// Object is an open stored object: it seeks, so a Range request reads only
// the bytes it asks for.
type Object interface {
	io.ReadSeekCloser
}

// Store keeps artifacts under keys such as runs/<runId>/video.mp4.
type Store interface {
	// Put stores size bytes of r under key; size -1 means unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	// Open opens key for reading; ErrNotFound when it does not exist.
	Open(ctx context.Context, key string) (Object, Info, error)
	// Stat describes key; ErrNotFound when it does not exist.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; a missing key is no error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Kind names the implementation ("folder" or "s3") for logs and metrics.
	Kind() string
}

// Keys of a run's artifacts. They depend on the run only, so a retried
// upload or a second attempt overwrites instead of adding.
const runsPrefix = "runs/"

// RunPrefix is the prefix of every key of run id.
func RunPrefix(runID string) string { return runsPrefix + runID + "/" }

// VideoKey is the key of run id's video; ext is the container (mp4, webm).
func VideoKey(runID, ext string) string {
	return RunPrefix(runID) + "video." + strings.TrimPrefix(ext, ".")
}

// ScreenshotKey is the key of the screenshot named name of run id.
func ScreenshotKey(runID, name string) string { return RunPrefix(runID) + "screenshots/" + name }

// RunOfKey returns the run id a key belongs to ("" when it is no run's).
func RunOfKey(key string) string {
	rest, ok := strings.CutPrefix(key, runsPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}

// ContentTypeOf guesses the media type of a key from its extension; the
// stores record it so the API answers with the file's real format.
func ContentTypeOf(key string) string {
	switch strings.ToLower(path.Ext(key)) {
	case ".mp4":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	}
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// validKey refuses keys that could leave a folder store's root or that S3
// would read differently.
func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid artifact key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("invalid artifact key %q", key)
		}
	}
	return nil
}
