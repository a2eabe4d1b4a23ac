package artifacts

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Config chooses and configures a store (ARTIFACT_STORE and the S3_* variables).
type Config struct {
	// Store is a folder path (default) or s3://bucket/prefix.
	Store string
	S3    S3Config
}

// IsS3 reports whether a store setting names a bucket.
func IsS3(store string) bool { return strings.HasPrefix(store, "s3://") }

// Open returns the store cfg names.
func Open(cfg Config) (Store, error) {
	if IsS3(cfg.Store) {
		s3 := cfg.S3
		s3.URL = cfg.Store
		return NewS3(s3)
	}
	if u, err := url.Parse(cfg.Store); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return nil, fmt.Errorf("ARTIFACT_STORE=%q: must be a folder or s3://bucket/prefix", cfg.Store)
	}
	if cfg.Store == "" {
		return nil, fmt.Errorf("ARTIFACT_STORE is empty")
	}
	return NewFolder(os.ExpandEnv(cfg.Store))
}

// PutFile uploads the file at path under key.
func PutFile(ctx context.Context, s Store, key, path, contentType string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return s.Put(ctx, key, f, st.Size(), contentType)
}
