package artifacts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3 serves the S3 protocol from memory on a loopback port.
func fakeS3(t *testing.T) *S3 {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	t.Cleanup(srv.Close)
	s, err := NewS3(S3Config{URL: "s3://artifacts/test-prefix", Endpoint: srv.URL, Region: "us-east-1",
		AccessKey: "key", SecretKey: "secret", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.EnsureBucket(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	return s
}

func stores(t *testing.T) map[string]Store {
	f, err := NewFolder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"folder": f, "s3": fakeS3(t)}
}

func TestStoreRoundTripAndRange(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("0123456789"), 10_000) // 100 kB
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			key := VideoKey("run-1", "mp4")
			info, err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body)), "")
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(body)) || info.ETag == "" {
				t.Fatalf("put info %+v", info)
			}
			st, err := s.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(len(body)) || st.ContentType != "video/mp4" || st.ModTime.IsZero() || st.ETag == "" {
				t.Fatalf("stat %+v", st)
			}
			for _, r := range []struct {
				name     string
				off, len int64
			}{
				{"first bytes", 0, 10},
				{"middle slice", 45_678, 1_000},
				{"last bytes", int64(len(body)) - 7, 7},
			} {
				obj, _, err := s.Open(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := obj.Seek(r.off, io.SeekStart); err != nil {
					t.Fatalf("%s: seek: %v", r.name, err)
				}
				got := make([]byte, r.len)
				if _, err := io.ReadFull(obj, got); err != nil {
					t.Fatalf("%s: read: %v", r.name, err)
				}
				_ = obj.Close()
				if !bytes.Equal(got, body[r.off:r.off+r.len]) {
					t.Fatalf("%s: got %q, want %q", r.name, got, body[r.off:r.off+r.len])
				}
			}
			// A second object, then List and Delete.
			shot := ScreenshotKey("run-1", "a.png")
			if _, err := s.Put(ctx, shot, strings.NewReader("png"), 3, "image/png"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, VideoKey("run-2", "webm"), strings.NewReader("webm"), -1, ""); err != nil {
				t.Fatal(err)
			}
			var keys []string
			if err := s.List(ctx, RunPrefix("run-1"), func(i Info) error { keys = append(keys, i.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			if want := []string{shot, key}; !slices.Equal(keys, want) {
				t.Fatalf("list %v, want %v", keys, want)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("deleting a missing key: %v", err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("stat after delete: %v", err)
			}
			if _, _, err := s.Open(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("open after delete: %v", err)
			}
		})
	}
}

func TestKeysRefuseEscapes(t *testing.T) {
	t.Parallel()
	f, err := NewFolder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "/etc/passwd", "runs/../../x", "runs/a/./b", `runs\a`, "runs//a"} {
		if _, err := f.Put(context.Background(), key, strings.NewReader("x"), 1, ""); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}

func TestParseS3URL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://b", "b", "", true},
		{"s3://b/", "b", "", true},
		{"s3://b/p/q/", "b", "p/q/", true},
		{"s3:///p", "", "", false},
		{"http://b/p", "", "", false},
	} {
		b, p, err := ParseS3URL(c.in)
		if (err == nil) != c.ok || b != c.bucket || p != c.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v", c.in, b, p, err)
		}
	}
}

func TestRunOfKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"runs/abc/video.mp4":         "abc",
		"runs/abc/screenshots/x.png": "abc",
		"runs/abc":                   "",
		"other/abc/x":                "",
	} {
		if got := RunOfKey(key); got != want {
			t.Errorf("RunOfKey(%q) = %q, want %q", key, got, want)
		}
	}
}
