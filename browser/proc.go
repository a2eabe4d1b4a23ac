package browser

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc names one process by its pid and its start time. The kernel gives a
// dead process's pid to a new one once its counter wraps (pid_max is often
// 32768, and every run starts a renderer), so a pid alone may name a
// stranger by the time a browser is looked at again: a dead browser taken
// for alive, or a Close that kills another browser's processes.
type proc struct {
	pid   int
	start string // field 22 of /proc/<pid>/stat; "" when it could not be read
}

// procOf names the process that has pid now.
func procOf(pid int) proc {
	st, _ := readStat(pid)
	return proc{pid: pid, start: st.start}
}

type procStat struct {
	state byte   // R, S, D, Z, X, ...
	start string // start time, in clock ticks after boot
}

// readStat reads the fields of /proc/<pid>/stat a proc needs.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The fields follow the parenthesised command name, which may itself
	// hold spaces and parentheses: state is field 3, starttime 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, syscall.EINVAL
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, syscall.EINVAL
	}
	return procStat{state: f[0][0], start: f[19]}, nil
}

// procfs reports whether /proc is there to be read.
func procfs() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// current reads the process's stat when pid still names it (running or a
// zombie not yet reaped); ok is false once it is gone or pid names another.
// Without procfs only kill(0) can tell, and only for a pid named alone.
func (p proc) current() (procStat, bool) {
	if p.pid <= 0 {
		return procStat{}, false
	}
	st, err := readStat(p.pid)
	if err == nil {
		return st, p.start == "" || st.start == p.start
	}
	if p.start == "" && !procfs() {
		return procStat{state: 'R'}, syscall.Kill(p.pid, 0) == nil
	}
	return procStat{}, false
}

// alive reports whether the process runs: not gone, not a zombie, and its
// pid not taken by another.
func (p proc) alive() bool {
	st, ok := p.current()
	return ok && st.state != 'Z' && st.state != 'X'
}

// killTree kills the process and the process group it leads (Chromium and
// its helpers, and the leakless guard when there is one), if pid still
// names it. Helpers left by a browser already gone are found by their
// profile (Browser.kill), not by a pid.
func (p proc) killTree() {
	if _, ok := p.current(); ok {
		killGroupOf(p.pid)
	}
}

// killGroupOf kills the process group pid belongs to, unless it is this
// process's own, and pid itself.
func killGroupOf(pid int) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != syscall.Getpgrp() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// waitGone polls until the process has exited (its parent reaps it) or max
// passes, so that the profile folder is no longer in use when it is removed.
func (p proc) waitGone(max time.Duration) {
	deadline := time.Now().Add(max)
	for p.alive() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// ProfileProcesses maps every other process started with a
// --user-data-dir to that folder: the processes of a browser, or of
// browsers left by a dead worker (actors.SweepStaleBrowsers).
func ProfileProcesses() map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if dir, ok := bytes.CutPrefix(arg, []byte("--user-data-dir=")); ok {
				out[pid] = string(dir)
				break
			}
		}
	}
	return out
}
