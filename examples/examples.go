// Package examples ships the demo site that `saveaction dev` serves and the
// recordings made on it, so the README walkthrough works with no internet.
package examples

import (
	"embed"
	"io/fs"
)

//go:embed site
var site embed.FS

//go:embed demo-recording.json
var demoRecording []byte

//go:embed failing-recording.json
var failingRecording []byte

// Site is the demo web site, rooted at its index page.
func Site() fs.FS {
	sub, err := fs.Sub(site, "site")
	if err != nil { // "site" is embedded above; Sub cannot fail on it
		panic(err)
	}
	return sub
}

// DemoRecording is a recording of the demo site that passes.
func DemoRecording() []byte { return append([]byte(nil), demoRecording...) }

// FailingRecording is a recording of the demo site whose third action
// looks for a button that does not exist.
func FailingRecording() []byte { return append([]byte(nil), failingRecording...) }
