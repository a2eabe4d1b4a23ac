package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Folder is a Store in a local folder: for one machine, or a volume every
// node mounts. A Put writes a temporary file and renames it into place, so
// a reader never sees half a file.
type Folder struct {
	root string
}

// NewFolder returns a store rooted at dir. The folder is made by the first
// Put, so a node that only serves or a command that fails early leaves
// nothing behind.
func NewFolder(dir string) (*Folder, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("artifact folder %s: %w", dir, err)
	}
	return &Folder{root: abs}, nil
}

// Kind implements Store.
func (f *Folder) Kind() string { return "folder" }

// Root is the folder the store writes in.
func (f *Folder) Root() string { return f.root }

func (f *Folder) path(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (f *Folder) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	p, err := f.path(key)
	if err != nil {
		return Info{}, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		_ = tmp.Close()
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return f.Stat(ctx, key)
}

// Open implements Store.
func (f *Folder) Open(ctx context.Context, key string) (Object, Info, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	file, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	st, err := file.Stat()
	if err != nil {
		_ = file.Close()
		return nil, Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	return file, folderInfo(key, st), nil
}

// Stat implements Store.
func (f *Folder) Stat(_ context.Context, key string) (Info, error) {
	p, err := f.path(key)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return folderInfo(key, st), nil
}

// folderInfo derives an ETag from size and modification time: a file is
// only ever replaced whole (rename), which changes both.
func folderInfo(key string, st fs.FileInfo) Info {
	h := sha256.Sum256([]byte(key + "\x00" + strconv.FormatInt(st.Size(), 10) + "\x00" + strconv.FormatInt(st.ModTime().UnixNano(), 10)))
	return Info{Key: key, Size: st.Size(), ModTime: st.ModTime().UTC(), ETag: `"` + hex.EncodeToString(h[:12]) + `"`,
		ContentType: ContentTypeOf(key)}
}

// Delete implements Store; it also removes the run's folders left empty.
func (f *Folder) Delete(_ context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != f.root && strings.HasPrefix(dir, f.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop climbing
			break
		}
	}
	return nil
}

// List implements Store.
func (f *Folder) List(ctx context.Context, prefix string, fn func(Info) error) error {
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".put-") {
			return nil
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(folderInfo(key, st))
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
