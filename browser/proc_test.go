package browser

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// processAlive reports whether pid runs and is not a zombie, whichever
// process it names.
func processAlive(pid int) bool { return proc{pid: pid}.alive() }

// takePid starts a process that gets pid, by setting the kernel's last
// given pid (root only) just before it. It retries while the number is in
// use: taken by another process first, or still held as the process group
// of the dead browser's helpers until init reaps them.
func takePid(t *testing.T, pid int) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to choose the next pid (/proc/sys/kernel/ns_last_pid)")
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return cmd
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Fatalf("pid %d was still in use after 30 s", pid)
	return nil
}

// A dead browser's pid, given by the kernel to a new process (pids wrap),
// names neither a live browser nor a process Close may kill.
func TestADeadBrowsersPidGivenToAnotherProcess(t *testing.T) {
	needBrowser(t)
	b, err := Launch(context.Background(), LaunchOptions{Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pid := b.PID()
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid != syscall.Getpgrp() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Its parent (the leakless guard, or init once the guard is dead too)
	// reaps it: only then is the pid free.
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil; _, err = os.Stat("/proc/" + strconv.Itoa(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed browser %d was not reaped in 10 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}

	stranger := takePid(t, pid)
	if b.Alive() {
		t.Errorf("the dead browser is reported alive: its pid %d now names another process", pid)
	}
	_ = b.Close()
	if !processAlive(stranger.Process.Pid) {
		t.Errorf("closing the dead browser killed process %d, which only took its pid", pid)
	}
}

// A process reaped between two looks is gone, not alive.
func TestProcAliveTracksOneProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := procOf(cmd.Process.Pid)
	if p.start == "" || !p.alive() {
		t.Fatalf("a running process: %+v alive %v", p, p.alive())
	}
	_ = cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for p.alive() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.alive() {
		t.Fatal("a killed process (a zombie, not yet reaped) is reported alive")
	}
	_ = cmd.Wait()
	if p.alive() || processAlive(p.pid) {
		t.Fatal("a reaped process is reported alive")
	}
}
