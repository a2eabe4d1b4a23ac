package browser

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxUploadBytes bounds one file given to a file input under the service
// policy (it is copied for the run).
const maxUploadBytes = 100 << 20

// uploadFiles resolves the file names of a file input (one per line). The
// local policy takes them relative to FilesDir or absolute, as given. The
// service policy takes names relative to FilesDir only: it refuses
// absolute paths, "..", links that lead outside FilesDir and anything but
// a regular file, all with the same message, so that a recording cannot
// learn what exists on the worker; and it hands Chromium a copy in the
// run's own folder, so that the file cannot change between the check and
// the upload.
func (r *replay) uploadFiles(value string) ([]string, error) {
	var names []string
	for _, name := range strings.Split(value, "\n") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		// Browsers report a chosen file as C:\fakepath\name.
		names = append(names, strings.TrimPrefix(name, `C:\fakepath\`))
	}
	if len(names) == 0 {
		return nil, errors.New("file input has no file name to upload")
	}
	var files []string
	for _, name := range names {
		if r.s != nil && r.s.guard != nil && r.s.guard.policy.Service {
			p, err := r.s.guard.copyUpload(r.opts.FilesDir, name)
			if err != nil {
				return nil, err
			}
			files = append(files, p)
			continue
		}
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.opts.FilesDir, name)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", name, err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			return nil, fmt.Errorf("file to upload not found: %s", abs)
		}
		files = append(files, abs)
	}
	return files, nil
}

// errUnavailable is the one answer for every file name the service policy
// does not serve, whatever the reason.
func errUnavailable(name string) error {
	return fmt.Errorf("file to upload %q is not available: file inputs take names of regular files relative to FILES_PATH (no absolute paths, no .., no links leading outside)", name)
}

// copyUpload copies FILES_PATH/name into the run's folder through an
// os.Root, which refuses every path (symbolic links included) that leads
// outside FILES_PATH.
func (g *guard) copyUpload(filesDir, name string) (string, error) {
	if filesDir == "" || filepath.IsAbs(name) || strings.HasPrefix(name, `\`) || filepath.VolumeName(name) != "" ||
		strings.ContainsRune(name, 0) || !filepath.IsLocal(name) {
		return "", errUnavailable(name)
	}
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", errUnavailable(name)
		}
	}
	root, err := os.OpenRoot(filesDir)
	if err != nil {
		return "", errUnavailable(name)
	}
	defer root.Close()
	// Stat first (it follows links, inside the root only): opening a FIFO
	// or a device would block or read what is not a file.
	if st, err := root.Stat(name); err != nil || !st.Mode().IsRegular() {
		return "", errUnavailable(name)
	}
	src, err := root.Open(name)
	if err != nil {
		return "", errUnavailable(name)
	}
	defer src.Close()
	if st, err := src.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", errUnavailable(name)
	}
	dir := filepath.Join(g.dir, fmt.Sprintf("upload-%d", g.nextUpload()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("prepare upload: %w", err)
	}
	dst := filepath.Join(dir, filepath.Base(filepath.Clean(name)))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("prepare upload: %w", err)
	}
	copied, err := io.Copy(out, io.LimitReader(src, maxUploadBytes+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", errUnavailable(name)
	}
	if copied > maxUploadBytes {
		return "", fmt.Errorf("file to upload %q is larger than %d MB", name, maxUploadBytes>>20)
	}
	return dst, nil
}

// nextUpload numbers the run's upload folders.
func (g *guard) nextUpload() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.uploads++
	return g.uploads
}
