// Package e2e starts the real activityd binary and talks HTTP to it, the
// way the README's quick start does.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/activityd/activityd/test/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "activityd-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "activityd")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/activityd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building activityd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running activityd.
type proc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
}

func (p *proc) out() string  { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) logs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// start runs `activityd serve` in dir with env added to a minimal
// environment and waits until it listens. The process is stopped at cleanup.
func start(t *testing.T, dir string, env ...string) *proc {
	t.Helper()
	return startCmd(t, dir, "serve", "activityd listening", env...)
}

// startCmd runs `activityd <command>` in dir with env added to a minimal
// environment and waits until it logs the message ready (for serve,
// "activityd listening", whose addr becomes base). The process is
// stopped at cleanup.
func startCmd(t *testing.T, dir, command, ready string, env ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan error, 1)}
	p.cmd = exec.Command(binary, command)
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=json"}, env...)
	stdout, _ := p.cmd.StdoutPipe()
	stderr, _ := p.cmd.StderrPipe()
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
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == ready {
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
	go func() { wg.Wait(); p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case a := <-addr:
		if a != "" {
			p.base = "http://" + a
		}
	case err := <-p.done:
		t.Fatalf("activityd %s exited before it was ready: %v\nstderr:\n%s", command, err, p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("activityd %s was not ready within 60s\nstderr:\n%s", command, p.logs())
	}
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("activityd did not stop within 30s of SIGTERM\n%s", p.logs())
		return nil
	}
}

// bootstrapToken returns the admin token serve printed on first start.
func (p *proc) bootstrapToken(t *testing.T) string {
	t.Helper()
	for _, f := range strings.Fields(p.out()) {
		if strings.HasPrefix(f, "adt_") {
			return f
		}
	}
	t.Fatalf("no admin token on stdout:\n%s", p.out())
	return ""
}

type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func call(t *testing.T, method, url, token, body string) response {
	t.Helper()
	if token != "" {
		token = "Token " + token
	}
	return do(t, method, url, token, body)
}

func callBearer(t *testing.T, method, url, token, body string) response {
	t.Helper()
	return do(t, method, url, "Bearer "+token, body)
}

func do(t *testing.T, method, url, authorization, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func want(t *testing.T, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
}

// cli runs a one-shot activityd subcommand in dir.
func cli(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LOG_FORMAT=json"}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestQuickStart follows the README: serve on the embedded default store,
// use the printed admin token, record, list, read and advance an event, then
// restart and read it back.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	admin := p.bootstrapToken(t)
	if strings.Contains(p.logs(), admin) {
		t.Fatal("the admin token appeared in a log line")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "activity.db")); err != nil {
		t.Fatalf("default SQLite store not created under ./data: %v", err)
	}

	want(t, call(t, "GET", p.base+"/healthz", "", ""), 200)
	want(t, call(t, "GET", p.base+"/readyz", "", ""), 200)
	r := call(t, "GET", p.base+"/v1/events", "", "")
	want(t, r, 401)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}

	r = call(t, "POST", p.base+"/v1/events", admin,
		`{"user_id":42,"action":"login","occurred_at":"2025-10-10T18:30:00.123Z","metadata":{"ip":"192.168.1.10"}}`)
	want(t, r, 201)
	id, _ := r.Body["id"].(string)
	if r.Header.Get("Location") != "/v1/events/"+id || r.Body["status"] != "PENDING" || r.Body["occurred_at"] != "2025-10-10T18:30:00.123Z" {
		t.Fatalf("create: %s (Location %q)", r.Raw, r.Header.Get("Location"))
	}

	r = call(t, "GET", p.base+"/v1/users/42/events?action=login", admin, "")
	want(t, r, 200)
	if items, _ := r.Body["items"].([]any); len(items) != 1 {
		t.Fatalf("list: %s", r.Raw)
	}
	want(t, call(t, "PATCH", p.base+"/v1/events/"+id, admin, `{"status":"IN_PROGRESS"}`), 200)
	want(t, call(t, "PATCH", p.base+"/v1/events/"+id, admin, `{"status":"PENDING"}`), 409)

	if err := p.stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.logs())
	}

	p2 := start(t, dir)
	if strings.Contains(p2.out(), "adt_") {
		t.Fatal("a second admin token was created on restart")
	}
	r = call(t, "GET", p2.base+"/v1/events/"+id, admin, "")
	want(t, r, 200)
	hist, _ := r.Body["status_history"].([]any)
	if r.Body["status"] != "IN_PROGRESS" || len(hist) != 2 {
		t.Fatalf("after restart: %s", r.Raw)
	}
}

// TestTokenCommands: tokens made by the CLI work against a running server,
// are scoped to their user, are listed without secrets, and a revocation
// takes effect at once.
func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	db := "DATABASE_URL=sqlite:" + filepath.Join(dir, "a.db")
	p := start(t, dir, db, "BOOTSTRAP_ADMIN_TOKEN=test-admin-token-0123456789abcdef")
	if strings.Contains(p.out(), "test-admin-token") {
		t.Fatal("a configured bootstrap token was printed")
	}
	want(t, call(t, "GET", p.base+"/v1/events", "test-admin-token-0123456789abcdef", ""), 200)

	out, errOut, code := cli(t, dir, []string{db}, "token", "create", "--user", "42", "--scope", "events:read,events:write", "--name", "ci")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "adt_") {
		t.Fatalf("token create must print the token alone, got %q", out)
	}
	tok := lines[0]

	want(t, call(t, "POST", p.base+"/v1/events", tok, `{"action":"login"}`), 201)
	want(t, call(t, "POST", p.base+"/v1/events", tok, `{"user_id":43,"action":"login"}`), 403)
	r := call(t, "GET", p.base+"/v1/events", tok, "")
	want(t, r, 200)
	if items, _ := r.Body["items"].([]any); len(items) != 1 {
		t.Fatalf("own list: %s", r.Raw)
	}

	out, _, code = cli(t, dir, []string{db}, "token", "list")
	if code != 0 || strings.Contains(out, tok) || strings.Contains(out, "test-admin-token") || !strings.Contains(out, "ci") {
		t.Fatalf("token list (exit %d):\n%s", code, out)
	}
	var id string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "ci" {
			id = f[0]
		}
	}
	if _, errOut, code = cli(t, dir, []string{db}, "token", "revoke", id); code != 0 {
		t.Fatalf("revoke %q: exit %d: %s", id, code, errOut)
	}
	want(t, call(t, "GET", p.base+"/v1/events", tok, ""), 401)

	if _, errOut, code = cli(t, dir, []string{db}, "token", "revoke", "nope"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Fatalf("revoking an unknown id: exit %d: %s", code, errOut)
	}
	if _, errOut, code = cli(t, dir, []string{db}, "token", "create", "--scope", "events:read"); code != 2 {
		t.Fatalf("non-admin token without --user: exit %d: %s", code, errOut)
	}
}

// TestStartupRefusals: a bad setting stops start-up with a message naming
// the variable; AUTH_MODE=none refuses a non-loopback address.
func TestStartupRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env  []string
		name string
	}{
		{[]string{"LOG_LEVEL=loud"}, "LOG_LEVEL"},
		{[]string{"MAX_BODY_BYTES=big"}, "MAX_BODY_BYTES"},
		{[]string{"DATABASE_URL=mysql://x"}, "DATABASE_URL"},
		{[]string{"AUTH_MODE=none", "HTTP_ADDR=:0"}, "AUTH_MODE=none"},
	} {
		_, errOut, code := cli(t, dir, tc.env, "serve")
		if code == 0 || !strings.Contains(errOut, tc.name) {
			t.Errorf("%v: exit %d, stderr %q; want a failure naming %s", tc.env, code, errOut, tc.name)
		}
	}
}

// TestAuthModeNone serves without credentials on loopback.
func TestAuthModeNone(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "AUTH_MODE=none", "DATABASE_URL=memory:")
	if !strings.Contains(p.logs(), "AUTH_MODE=none") {
		t.Fatal("no warning logged for AUTH_MODE=none")
	}
	want(t, call(t, "POST", p.base+"/v1/events", "", `{"user_id":1,"action":"viewed"}`), 201)
}

// TestPostgresRestart runs the binary on PostgreSQL: events recorded before
// a restart are read back after it, with their history.
func TestPostgresRestart(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	dir := t.TempDir()
	env := []string{"DATABASE_URL=" + url, "BOOTSTRAP_ADMIN_TOKEN=pg-admin-token-0123456789abcdef"}
	const admin = "pg-admin-token-0123456789abcdef"

	if _, errOut, code := cli(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	p := start(t, dir, env...)
	var ids []string
	for i := range 3 {
		r := call(t, "POST", p.base+"/v1/events", admin, fmt.Sprintf(`{"user_id":3000000000,"action":"upload_file","metadata":{"n":%d}}`, i))
		want(t, r, 201)
		ids = append(ids, r.Body["id"].(string))
	}
	want(t, call(t, "PATCH", p.base+"/v1/events/"+ids[0], admin, `{"status":"IN_PROGRESS"}`), 200)
	r := call(t, "POST", p.base+"/v1/events/batch", admin, `{"events":[{"user_id":7,"action":"login"},{"user_id":7,"action":"nope!"}]}`)
	want(t, r, 200)
	if err := p.stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.logs())
	}

	p = start(t, dir, env...)
	r = call(t, "GET", p.base+"/v1/users/3000000000/events?order=asc", admin, "")
	want(t, r, 200)
	items, _ := r.Body["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("after restart: %s", r.Raw)
	}
	for i, it := range items {
		ev := it.(map[string]any)
		if ev["id"] != ids[i] || ev["metadata"].(map[string]any)["n"] != float64(i) {
			t.Fatalf("item %d after restart: %v", i, ev)
		}
	}
	r = call(t, "GET", p.base+"/v1/events/"+ids[0], admin, "")
	if hist, _ := r.Body["status_history"].([]any); r.Body["status"] != "IN_PROGRESS" || len(hist) != 2 {
		t.Fatalf("history after restart: %s", r.Raw)
	}
	r = call(t, "GET", p.base+"/v1/users/7/events", admin, "")
	if items, _ := r.Body["items"].([]any); len(items) != 1 {
		t.Fatalf("batch after restart: %s", r.Raw)
	}
}

// TestCacheModes: with REDIS_URL the binary caches in Redis, without it in
// process, and CACHE_TTL=0 turns caching off; /readyz reports Redis.
func TestCacheModes(t *testing.T) {
	redisURL, prefix := testenv.RedisURL(t)
	for _, tc := range []struct {
		name  string
		env   []string
		reads string // X-Cache of two reads
		ready string // the cache member of /readyz
	}{
		{"redis", []string{"REDIS_URL=" + redisURL, "CACHE_PREFIX=" + prefix}, "MISS HIT", "ok"},
		{"in-process", nil, "MISS HIT", ""},
		{"off", []string{"CACHE_TTL=0"}, "BYPASS BYPASS", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"DATABASE_URL=memory:", "BOOTSTRAP_ADMIN_TOKEN=cache-admin-token-0123456789abcdef"}, tc.env...)
			p := start(t, t.TempDir(), env...)
			const admin = "cache-admin-token-0123456789abcdef"
			want(t, call(t, "POST", p.base+"/v1/events", admin, `{"user_id":5,"action":"login"}`), 201)
			a := call(t, "GET", p.base+"/v1/users/5/events", admin, "")
			b := call(t, "GET", p.base+"/v1/users/5/events", admin, "")
			if got := a.Header.Get("X-Cache") + " " + b.Header.Get("X-Cache"); got != tc.reads || a.Raw != b.Raw {
				t.Fatalf("X-Cache %q (same body %v), want %q", got, a.Raw == b.Raw, tc.reads)
			}
			want(t, call(t, "POST", p.base+"/v1/events", admin, `{"user_id":5,"action":"logout"}`), 201)
			if r := call(t, "GET", p.base+"/v1/users/5/events", admin, ""); !strings.Contains(r.Raw, "logout") {
				t.Fatalf("stale after a write: %s", r.Raw)
			}
			r := call(t, "GET", p.base+"/readyz", "", "")
			if got, _ := r.Body["cache"].(string); got != tc.ready {
				t.Fatalf("/readyz cache = %q, want %q: %s", got, tc.ready, r.Raw)
			}
		})
	}
}
