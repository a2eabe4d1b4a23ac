package fleetsim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is one process the driver started. Its output is read line by
// line: the replay bounds of simulated workers feed the overlap check, the
// last lines are kept for a report of what went wrong.
type proc struct {
	name string
	kind string // api, worker
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	tail   []string // the last lines
	ready  bool
	killed time.Time // when the driver sent SIGKILL
}

const tailLines = 40

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) wait(within time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (p *proc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// logLine is what the driver reads of a JSON log line.
type logLine struct {
	Time  time.Time `json:"timestamp"`
	Level string    `json:"level"`
	Msg   string    `json:"message"`
	RunID string    `json:"runId"`
}

// start runs bin with args and env, reading its output with onLine.
func startProc(bin, name, kind string, env []string, args []string, onLine func(*proc, logLine)) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	// Its own process group, so a Ctrl-C of the driver does not reach it
	// before the driver's own clean-up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{name: name, kind: kind, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var l logLine
			if json.Unmarshal(line, &l) == nil && onLine != nil {
				onLine(p, l)
			}
			p.mu.Lock()
			if len(p.tail) == tailLines {
				p.tail = p.tail[1:]
			}
			p.tail = append(p.tail, string(line))
			if !p.ready && (l.Msg == "worker started" || strings.Contains(l.Msg, "listening")) {
				p.ready = true
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		<-read
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) isReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// kill9 kills the process at once and notes when.
func (p *proc) kill9() {
	p.mu.Lock()
	p.killed = time.Now()
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

func (p *proc) killedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// stop sends SIGTERM and waits, then SIGKILL.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.wait(grace) {
		p.kill9()
		<-p.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuSeconds is the user and system CPU time of pid so far.
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// privateRedis is a redis-server of the driver's own on a loopback port,
// without persistence: a restart loses every key, the harshest case.
type privateRedis struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start(ctx context.Context) error {
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--maxclients", "20000")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.done = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private redis does not answer: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *privateRedis) pid() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// kill stops redis-server with SIGKILL: an outage, not a shutdown.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// privatePostgres is a PostgreSQL cluster of the driver's own under a
// temporary folder, on a loopback port, run as the postgres user when the
// driver is root (the server refuses root).
type privatePostgres struct {
	dir  string
	port int
	bin  string
}

func newPrivatePostgres(base string) (*privatePostgres, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, fmt.Errorf("initdb is not installed (/usr/lib/postgresql/*/bin)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg := &privatePostgres{dir: filepath.Join(base, "pg"), port: port, bin: filepath.Dir(bins[len(bins)-1])}
	if err := os.MkdirAll(pg.dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "-R", "postgres:", pg.dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown: %v: %s", err, out)
		}
	}
	if out, err := pg.as(pg.bin+"/initdb", "-D", pg.dir+"/data", "-A", "trust", "-U", "root", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return pg, nil
}

// as runs a command as the postgres user when root, else as ourselves.
func (pg *privatePostgres) as(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if os.Geteuid() != 0 {
		return exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return exec.CommandContext(ctx, "su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " ")).CombinedOutput()
}

func (pg *privatePostgres) ctl(args ...string) error {
	out, err := pg.as(append([]string{pg.bin + "/pg_ctl", "-D", pg.dir + "/data"}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

func (pg *privatePostgres) dsn() string {
	return fmt.Sprintf("postgres://root@127.0.0.1:%d/saveaction?sslmode=disable&connect_timeout=3", pg.port)
}

// start runs the server with pg_stat_statements loaded, fsync off (a
// benchmark of coordination, not of the disk) and room for every
// worker's connection pool.
func (pg *privatePostgres) start(maxConns int) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"+
		" -c max_connections=%d -c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=5000",
		pg.port, pg.dir, maxConns)
	return pg.ctl("start", "-w", "-t", "90", "-l", pg.dir+"/log", "-o", opts)
}

// stop shuts the server down at once, cutting every connection.
func (pg *privatePostgres) stop() error { return pg.ctl("stop", "-m", "immediate", "-w") }

// postmasterPID reads the server's pid file.
func (pg *privatePostgres) postmasterPID() int {
	raw, err := os.ReadFile(pg.dir + "/data/postmaster.pid")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
	return n
}
