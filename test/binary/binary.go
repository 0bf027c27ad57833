// Package binary builds and runs the real activityd binary for end-to-end
// tests: it builds ./cmd/activityd once per test binary, starts a
// subcommand in a minimal environment and waits for its ready log line,
// keeps its logs and output, stops it with SIGTERM, runs one-shot
// subcommands, and talks HTTP to it.
//
// A package using it calls Main (or MainOnDemand) from its TestMain, so
// that the build is removed after the tests:
//
//	func TestMain(m *testing.M) { binary.Main(m) }
//
//	p := binary.Start(t, t.TempDir(), "DATABASE_URL=memory:")
//	binary.Want(t, binary.Call(t, "GET", p.Base+"/healthz", "", ""), 200)
package binary

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pkg is what is built: an import path, so that it builds from any
// package of the module.
const pkg = "github.com/activityd/activityd/cmd/activityd"

var build struct {
	once sync.Once
	dir  string // the temporary directory holding the binary
	path string
	err  error
}

// Build builds activityd, once per test binary, into a temporary directory
// that Main and MainOnDemand remove, and returns its path. Later calls
// return the first call's result.
func Build() (string, error) {
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "activityd-test")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		path := filepath.Join(dir, "activityd")
		if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
			build.err = fmt.Errorf("building activityd: %v\n%s", err, out)
			return
		}
		build.path = path
	})
	return build.path, build.err
}

// Path is the path of the built binary, building it if no one has yet;
// the test fails if it does not build.
func Path(t testing.TB) string {
	t.Helper()
	path, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Main is a TestMain: it builds the binary before any test runs (a build
// failure exits 1 at once), runs the tests, removes the binary and exits.
func Main(m *testing.M) {
	if _, err := Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		removeBuild()
		os.Exit(1)
	}
	MainOnDemand(m)
}

// MainOnDemand is a TestMain for a package whose tests build the binary
// when they need it (Build, Path, Start), so that a test that skips first
// builds nothing: it runs the tests, removes the binary if one was built
// and exits.
func MainOnDemand(m *testing.M) {
	code := m.Run()
	removeBuild()
	os.Exit(code)
}

func removeBuild() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// minimalEnv is the environment every process gets before the test's own:
// PATH, HOME=dir and extra.
func minimalEnv(dir string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, extra...)
}

// Command is a long-running subcommand and the JSON log line (its msg)
// that says it is ready.
type Command struct {
	Name    string        // serve, worker, scheduler
	Ready   string        // msg of the ready log line; its addr, if any, becomes Proc.Base
	Timeout time.Duration // how long to wait for Ready; 60s if zero
}

var (
	// Serve is `activityd serve`, ready when it listens.
	Serve = Command{Name: "serve", Ready: "activityd listening"}
	// Worker is `activityd worker`, ready when it takes counting tasks.
	Worker = Command{Name: "worker", Ready: "counting worker running"}
	// Scheduler is `activityd scheduler`, ready when it schedules counting.
	Scheduler = Command{Name: "scheduler", Ready: "counting scheduler running"}
)

// Within is c waiting at most d for its ready line.
func (c Command) Within(d time.Duration) Command { c.Timeout = d; return c }

// Start runs `activityd serve` in dir and waits until it listens: see
// Command.Start.
func Start(t *testing.T, dir string, env ...string) *Proc {
	t.Helper()
	return Serve.Start(t, dir, env...)
}

// Proc is a running activityd.
type Proc struct {
	Base string // http://127.0.0.1:port, the addr of the ready line ("" without one)

	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{} // closed once the process is waited for
	err    error         // its exit error, set before exited is closed
}

// Stdout is what the process printed on stdout so far.
func (p *Proc) Stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }

// PID is the process id, to read the process's own figures (its memory
// in /proc/PID/status, say).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Logs is what the process logged (its stderr) so far.
func (p *Proc) Logs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// Start runs `activityd <c.Name>` in dir, with HOME=dir,
// HTTP_ADDR=127.0.0.1:0, LOG_FORMAT=json and PATH, then env (which may
// override them), and waits until it logs c.Ready. The test fails if the
// process exits first or is not ready in time. The process is killed at
// cleanup unless it has exited.
func (c Command) Start(t *testing.T, dir string, env ...string) *Proc {
	t.Helper()
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	p := &Proc{exited: make(chan struct{})}
	p.cmd = exec.Command(Path(t), c.Name)
	p.cmd.Dir = dir
	p.cmd.Env = append(minimalEnv(dir, "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json"), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct{ Msg, Addr, Scheme string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == c.Ready {
				if rec.Addr != "" {
					rec.Addr = cmp.Or(rec.Scheme, "http") + "://" + rec.Addr
				}
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := stdout.Read(buf)
			p.mu.Lock()
			p.stdout.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { wg.Wait(); p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case a := <-addr:
		p.Base = a
	case <-p.exited:
		t.Fatalf("activityd %s exited before it was ready: %v\nstderr:\n%s", c.Name, p.err, p.Logs())
	case <-time.After(timeout):
		t.Fatalf("activityd %s was not ready within %v\nstderr:\n%s", c.Name, timeout, p.Logs())
	}
	return p
}

// Stop sends SIGTERM and returns the exit error; the test fails if the
// process has not exited 30s later.
func (p *Proc) Stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("activityd did not stop within 30s of SIGTERM\n%s", p.Logs())
		return nil
	}
}

// Kill sends SIGKILL — a crash: no graceful shutdown, nothing drained —
// and waits until the process is gone; the test fails if it has not exited
// 30s later.
func (p *Proc) Kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("activityd did not exit within 30s of SIGKILL\n%s", p.Logs())
	}
}

// BootstrapToken is the admin token serve printed on its first start; the
// test fails if there is none.
func (p *Proc) BootstrapToken(t *testing.T) string {
	t.Helper()
	for _, f := range strings.Fields(p.Stdout()) {
		if strings.HasPrefix(f, "adt_") {
			return f
		}
	}
	t.Fatalf("no admin token on stdout:\n%s", p.Stdout())
	return ""
}

// Run runs a one-shot `activityd <args>` in dir, with HOME=dir,
// LOG_FORMAT=json and PATH, then env, and returns what it printed and its
// exit code.
func Run(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Dir = dir
	cmd.Env = append(minimalEnv(dir, "LOG_FORMAT=json"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}
