package browser

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandboxChildEnv marks the child process of TestSandboxWhenNotRoot.
const sandboxChildEnv = "SAVEACTION_SANDBOX_CHILD"

// TestSandboxWhenNotRoot runs Launch as an unprivileged user (nobody, in a
// child process of this test binary) and checks that Chromium started
// with its sandbox, and that as root it is started without one.
func TestSandboxWhenNotRoot(t *testing.T) {
	if os.Getenv(sandboxChildEnv) != "" {
		sandboxChild(t)
		return
	}
	needBrowser(t)
	if os.Geteuid() != 0 {
		sandboxChild(t) // already unprivileged: check here
		return
	}
	if NoSandboxReason() == "" || shared.b.Sandboxed() {
		t.Fatal("as root, Chromium must run without its sandbox, and say why")
	}
	// The test binary lives in a folder only root may enter: copy it
	// where nobody can run it.
	dir, err := os.MkdirTemp("", "saveaction-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "browser.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestSandboxWhenNotRoot$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sandboxChildEnv+"=1", "HOME="+dir, "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sandboxed chromium ok") {
		t.Fatalf("child did not report:\n%s", out)
	}
}

func sandboxChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Launch(ctx, LaunchOptions{Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(b.PID()) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Sandboxed() || strings.Contains(string(cmdline), "--no-sandbox") {
		t.Fatalf("not root, yet Chromium runs without its sandbox (Sandboxed %v): %q", b.Sandboxed(), cmdline)
	}
	// And it works: a page loads and a check passes.
	res := b.Replay(ctx, newRec(fixtureURL("/static.html"), containsText("")), patient(), nil)
	wantStatus(t, res, RunPassed)
	t.Log("sandboxed chromium ok")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
