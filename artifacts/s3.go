package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says how to reach an S3-compatible bucket.
type S3Config struct {
	// URL is s3://bucket/prefix (ARTIFACT_STORE); the prefix may be empty.
	URL string
	// Endpoint is host:port or a URL (S3_ENDPOINT); http:// turns TLS off.
	// Empty means AWS (s3.amazonaws.com).
	Endpoint string
	// Region (S3_REGION); empty lets the client discover it.
	Region string
	// AccessKey and SecretKey (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY);
	// both empty means anonymous.
	AccessKey, SecretKey string
	// PathStyle addresses the bucket in the path (S3_FORCE_PATH_STYLE), as
	// MinIO and most self-hosted servers need.
	PathStyle bool
	// MaxRetries bounds the client's own retries of one request (default
	// 3; minio-go's own default of 10 makes a dead endpoint take minutes).
	MaxRetries int
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
}

// S3 is a Store in an S3-compatible bucket.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
}

// ParseS3URL splits s3://bucket/prefix.
func ParseS3URL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix URL", raw)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// NewS3 returns a store on the bucket cfg names. It does not contact the
// server: a store that is down shows at the first Put (retried, then
// recorded on the run) and the API answers for it per request.
func NewS3(cfg S3Config) (*S3, error) {
	bucket, prefix, err := ParseS3URL(cfg.URL)
	if err != nil {
		return nil, err
	}
	endpoint, secure := "s3.amazonaws.com", true
	if e := strings.TrimSpace(cfg.Endpoint); e != "" {
		if strings.Contains(e, "://") {
			u, err := url.Parse(e)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, fmt.Errorf("S3_ENDPOINT=%q: must be host:port or an http(s) URL", e)
			}
			endpoint, secure = u.Host, u.Scheme == "https"
		} else {
			endpoint = e
		}
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.New(&credentials.Static{}) // anonymous
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = 3
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds: creds, Secure: secure, Region: cfg.Region, BucketLookup: lookup,
		MaxRetries: retries, Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", endpoint, err)
	}
	return &S3{client: client, bucket: bucket, prefix: prefix}, nil
}

// Kind implements Store.
func (s *S3) Kind() string { return "s3" }

// EnsureBucket creates the bucket when it does not exist (dev, tests).
func (s *S3) EnsureBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		return fmt.Errorf("create bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *S3) object(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	name, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	if contentType == "" {
		contentType = ContentTypeOf(key)
	}
	up, err := s.client.PutObject(ctx, s.bucket, name, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	mod := up.LastModified
	if mod.IsZero() {
		mod = time.Now()
	}
	return Info{Key: key, Size: up.Size, ModTime: mod.UTC(), ETag: quoteETag(up.ETag), ContentType: contentType}, nil
}

// Open implements Store. The object is read lazily: a Seek then Read asks
// the server for that range only.
func (s *S3) Open(ctx context.Context, key string) (Object, Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	name, _ := s.object(key)
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", key, s3Err(err))
	}
	return obj, info, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	name, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, s3Err(err))
	}
	return s3Info(key, st), nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s3Err(err), ErrNotFound) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("list %s: %w", prefix, o.Err)
		}
		if err := fn(s3Info(strings.TrimPrefix(o.Key, s.prefix), o)); err != nil {
			return err
		}
	}
	return nil
}

func s3Info(key string, o minio.ObjectInfo) Info {
	ct := o.ContentType
	if ct == "" || ct == "binary/octet-stream" {
		ct = ContentTypeOf(key)
	}
	return Info{Key: key, Size: o.Size, ModTime: o.LastModified.UTC(), ETag: quoteETag(o.ETag), ContentType: ct}
}

func quoteETag(e string) string {
	if e == "" || strings.HasPrefix(e, `"`) || strings.HasPrefix(e, `W/"`) {
		return e
	}
	return `"` + e + `"`
}

// s3Err maps the server's "no such key" to ErrNotFound.
func s3Err(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
