package actors_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/actors"
)

// TestSweepKillsOrphansAndRemovesStaleProfiles plays a worker killed with -9
// whose browser survived: an orphaned process using one of our profiles,
// plus a profile folder nobody uses. A live worker's browser is left alone.
func TestSweepKillsOrphansAndRemovesStaleProfiles(t *testing.T) {
	// A root of the test's own, so sweeps of workers that other tests start
	// at the same time cannot touch these folders, nor this one theirs.
	root := t.TempDir()
	orphanDir, err := os.MkdirTemp(root, "saveaction-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	staleDir, _ := os.MkdirTemp(root, "saveaction-chromium-")
	liveDir, _ := os.MkdirTemp(root, "saveaction-chromium-")
	youngDir, _ := os.MkdirTemp(root, "saveaction-chromium-") // a browser starting right now
	defer os.RemoveAll(youngDir)
	old := time.Now().Add(-time.Hour)
	for _, d := range []string{orphanDir, staleDir, liveDir} {
		_ = os.Chtimes(d, old, old)
	}
	defer os.RemoveAll(liveDir)

	// The orphan: started in a subshell that exits at once, so init adopts it.
	starter := exec.Command("sh", "-c", `(sh -c 'sleep 60; :' fake --user-data-dir=`+orphanDir+` >/dev/null 2>&1 &)`)
	if out, err := starter.CombinedOutput(); err != nil {
		t.Fatalf("start orphan: %v %s", err, out)
	}
	orphan := findProc(t, "--user-data-dir="+orphanDir)
	// A live browser of another worker: our own child.
	live := exec.Command("sh", "-c", "sleep 60; :", "fake", "--user-data-dir="+liveDir)
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Process.Kill(); _ = live.Wait() }()

	sweepKills(t, root, orphan)
	if _, err := os.Stat(staleDir); !os.IsNotExist(err) {
		t.Fatalf("stale profile %s not removed", staleDir)
	}
	if _, err := os.Stat(youngDir); err != nil {
		t.Fatalf("young profile removed: %v", err)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Fatalf("live worker's profile removed: %v", err)
	}
	if err := live.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("live worker's browser killed: %v", err)
	}
}

// An orphan whose profile folder is gone (its browser crashed and was
// closed, which removed the folder) is killed all the same.
func TestSweepKillsOrphansWhoseProfileIsGone(t *testing.T) {
	root := t.TempDir()
	gone := root + "/saveaction-chromium-gone"
	starter := exec.Command("sh", "-c", `(sh -c 'sleep 60; :' fake --user-data-dir=`+gone+` >/dev/null 2>&1 &)`)
	if out, err := starter.CombinedOutput(); err != nil {
		t.Fatalf("start orphan: %v %s", err, out)
	}
	orphan := findProc(t, "--user-data-dir="+gone)
	t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
	sweepKills(t, root, orphan)
}

// sweepKills sweeps root and wants orphan killed by it.
func sweepKills(t *testing.T, root string, orphan int) {
	t.Helper()
	if rep := actors.SweepStaleBrowsers(root); rep.Killed < 1 {
		t.Fatalf("sweep killed %d processes, want the orphan", rep.Killed)
	}
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(orphan, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if syscall.Kill(orphan, 0) == nil {
		t.Fatalf("orphan %d still alive", orphan)
	}
}

func findProc(t *testing.T, arg string) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && strings.Contains(string(b), arg) {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no process with %s", arg)
	return 0
}
