package actors

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/saveaction/runner/browser"
)

// profilePattern matches the temporary profiles browser.Launch creates.
const profilePattern = "saveaction-chromium-*"

// staleAfter is how old an unused profile folder must be to be removed.
const staleAfter = time.Minute

// SweepReport says what a sweep removed.
type SweepReport struct {
	Killed   int // orphaned Chromium processes killed
	Profiles int // stale profile folders removed
}

// SweepStaleBrowsers cleans up after workers that died without closing
// their browsers (kill -9): it kills Chromium processes that use one of our
// temporary profiles and have been orphaned (their parent is init), then
// removes every such profile no live process uses. Browsers of live workers
// on the same machine are left alone.
//
// root is the folder the profiles live in: "" means os.TempDir(), where
// browser.Launch puts them.
func SweepStaleBrowsers(root string) SweepReport {
	var rep SweepReport
	if root == "" {
		root = os.TempDir()
	}
	// No early return when no folder is left: an orphan whose browser
	// was closed after it crashed had its folder removed, and is one still.
	dirs, _ := filepath.Glob(filepath.Join(root, profilePattern))
	inUse := map[string]bool{}
	for pid, dir := range browser.ProfileProcesses() {
		if m, _ := filepath.Match(profilePattern, filepath.Base(dir)); !m || filepath.Dir(dir) != filepath.Clean(root) {
			continue
		}
		if parentPID(pid) == 1 {
			if syscall.Kill(-pid, syscall.SIGKILL) != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			rep.Killed++
			continue
		}
		inUse[dir] = true
	}
	for _, d := range dirs {
		// A young folder may belong to a browser another worker is starting
		// right now, before its process shows the flag.
		if st, err := os.Stat(d); err != nil || time.Since(st.ModTime()) < staleAfter {
			continue
		}
		if !inUse[d] && os.RemoveAll(d) == nil {
			rep.Profiles++
		}
	}
	return rep
}

func parentPID(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
