package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// BenchmarkPut measures upload throughput per store (MB/s is the inverse
// of upload time per MB): go test -run '^$' -bench Put ./artifacts/
func BenchmarkPut(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 8<<20)
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	defer srv.Close()
	s3, err := NewS3(S3Config{URL: "s3://bench/p", Endpoint: srv.URL, Region: "us-east-1", AccessKey: "k", SecretKey: "s", PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s3.EnsureBucket(context.Background(), "us-east-1"); err != nil {
		b.Fatal(err)
	}
	folder, err := NewFolder(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []Store{folder, s3} {
		b.Run(s.Kind(), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for i := 0; b.Loop(); i++ {
				if _, err := s.Put(context.Background(), fmt.Sprintf("runs/bench/%d.mp4", i%4), bytes.NewReader(body), int64(len(body)), ""); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Kind()+"/read", func(b *testing.B) {
			if _, err := s.Put(context.Background(), "runs/bench/read.mp4", bytes.NewReader(body), int64(len(body)), ""); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				obj, _, err := s.Open(context.Background(), "runs/bench/read.mp4")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, obj); err != nil {
					b.Fatal(err)
				}
				_ = obj.Close()
			}
		})
	}
}
