// Package e2e starts the real activityd binary and talks HTTP to it, the
// way the README's quick start does.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

func TestMain(m *testing.M) { binary.Main(m) }

// TestQuickStart follows the README: serve on the embedded default store,
// use the printed admin token, record, list, read and advance an event, then
// restart and read it back.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	p := binary.Start(t, dir)
	admin := p.BootstrapToken(t)
	if strings.Contains(p.Logs(), admin) {
		t.Fatal("the admin token appeared in a log line")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "activity.db")); err != nil {
		t.Fatalf("default SQLite store not created under ./data: %v", err)
	}

	binary.Want(t, binary.Call(t, "GET", p.Base+"/healthz", "", ""), 200)
	binary.Want(t, binary.Call(t, "GET", p.Base+"/readyz", "", ""), 200)
	r := binary.Call(t, "GET", p.Base+"/v1/events", "", "")
	binary.Want(t, r, 401)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}

	r = binary.Call(t, "POST", p.Base+"/v1/events", admin,
		`{"user_id":42,"action":"login","occurred_at":"2025-10-10T18:30:00.123Z","metadata":{"ip":"192.168.1.10"}}`)
	binary.Want(t, r, 201)
	id, _ := r.Body["id"].(string)
	if r.Header.Get("Location") != "/v1/events/"+id || r.Body["status"] != "PENDING" || r.Body["occurred_at"] != "2025-10-10T18:30:00.123Z" {
		t.Fatalf("create: %s (Location %q)", r.Raw, r.Header.Get("Location"))
	}

	r = binary.Call(t, "GET", p.Base+"/v1/users/42/events?action=login", admin, "")
	binary.Want(t, r, 200)
	if items, _ := r.Body["items"].([]any); len(items) != 1 {
		t.Fatalf("list: %s", r.Raw)
	}
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"IN_PROGRESS"}`), 200)
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+id, admin, `{"status":"PENDING"}`), 409)

	if err := p.Stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
	}

	p2 := binary.Start(t, dir)
	if strings.Contains(p2.Stdout(), "adt_") {
		t.Fatal("a second admin token was created on restart")
	}
	r = binary.Call(t, "GET", p2.Base+"/v1/events/"+id, admin, "")
	binary.Want(t, r, 200)
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
	p := binary.Start(t, dir, db, "BOOTSTRAP_ADMIN_TOKEN=test-admin-token-0123456789abcdef")
	if strings.Contains(p.Stdout(), "test-admin-token") {
		t.Fatal("a configured bootstrap token was printed")
	}
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events", "test-admin-token-0123456789abcdef", ""), 200)

	out, errOut, code := binary.Run(t, dir, []string{db}, "token", "create", "--user", "42", "--scope", "events:read,events:write", "--name", "ci")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "adt_") {
		t.Fatalf("token create must print the token alone, got %q", out)
	}
	tok := lines[0]

	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", tok, `{"action":"login"}`), 201)
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", tok, `{"user_id":43,"action":"login"}`), 403)
	r := binary.Call(t, "GET", p.Base+"/v1/events", tok, "")
	binary.Want(t, r, 200)
	if items, _ := r.Body["items"].([]any); len(items) != 1 {
		t.Fatalf("own list: %s", r.Raw)
	}

	out, _, code = binary.Run(t, dir, []string{db}, "token", "list")
	if code != 0 || strings.Contains(out, tok) || strings.Contains(out, "test-admin-token") || !strings.Contains(out, "ci") {
		t.Fatalf("token list (exit %d):\n%s", code, out)
	}
	var id string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "ci" {
			id = f[0]
		}
	}
	if _, errOut, code = binary.Run(t, dir, []string{db}, "token", "revoke", id); code != 0 {
		t.Fatalf("revoke %q: exit %d: %s", id, code, errOut)
	}
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events", tok, ""), 401)

	if _, errOut, code = binary.Run(t, dir, []string{db}, "token", "revoke", "nope"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Fatalf("revoking an unknown id: exit %d: %s", code, errOut)
	}
	if _, errOut, code = binary.Run(t, dir, []string{db}, "token", "create", "--scope", "events:read"); code != 2 {
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
		_, errOut, code := binary.Run(t, dir, tc.env, "serve")
		if code == 0 || !strings.Contains(errOut, tc.name) {
			t.Errorf("%v: exit %d, stderr %q; want a failure naming %s", tc.env, code, errOut, tc.name)
		}
	}
}

// TestAuthModeNone serves without credentials on loopback.
func TestAuthModeNone(t *testing.T) {
	dir := t.TempDir()
	p := binary.Start(t, dir, "AUTH_MODE=none", "DATABASE_URL=memory:")
	if !strings.Contains(p.Logs(), "AUTH_MODE=none") {
		t.Fatal("no warning logged for AUTH_MODE=none")
	}
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", "", `{"user_id":1,"action":"viewed"}`), 201)
}

// TestPostgresRestart runs the binary on PostgreSQL: events recorded before
// a restart are read back after it, with their history.
func TestPostgresRestart(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	dir := t.TempDir()
	env := []string{"DATABASE_URL=" + url, "BOOTSTRAP_ADMIN_TOKEN=pg-admin-token-0123456789abcdef"}
	const admin = "pg-admin-token-0123456789abcdef"

	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	p := binary.Start(t, dir, env...)
	var ids []string
	for i := range 3 {
		r := binary.Call(t, "POST", p.Base+"/v1/events", admin, fmt.Sprintf(`{"user_id":3000000000,"action":"upload_file","metadata":{"n":%d}}`, i))
		binary.Want(t, r, 201)
		ids = append(ids, r.Body["id"].(string))
	}
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/events/"+ids[0], admin, `{"status":"IN_PROGRESS"}`), 200)
	r := binary.Call(t, "POST", p.Base+"/v1/events/batch", admin, `{"events":[{"user_id":7,"action":"login"},{"user_id":7,"action":"nope!"}]}`)
	binary.Want(t, r, 200)
	if err := p.Stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
	}

	p = binary.Start(t, dir, env...)
	r = binary.Call(t, "GET", p.Base+"/v1/users/3000000000/events?order=asc", admin, "")
	binary.Want(t, r, 200)
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
	r = binary.Call(t, "GET", p.Base+"/v1/events/"+ids[0], admin, "")
	if hist, _ := r.Body["status_history"].([]any); r.Body["status"] != "IN_PROGRESS" || len(hist) != 2 {
		t.Fatalf("history after restart: %s", r.Raw)
	}
	r = binary.Call(t, "GET", p.Base+"/v1/users/7/events", admin, "")
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
			p := binary.Start(t, t.TempDir(), env...)
			const admin = "cache-admin-token-0123456789abcdef"
			binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", admin, `{"user_id":5,"action":"login"}`), 201)
			a := binary.Call(t, "GET", p.Base+"/v1/users/5/events", admin, "")
			b := binary.Call(t, "GET", p.Base+"/v1/users/5/events", admin, "")
			if got := a.Header.Get("X-Cache") + " " + b.Header.Get("X-Cache"); got != tc.reads || a.Raw != b.Raw {
				t.Fatalf("X-Cache %q (same body %v), want %q", got, a.Raw == b.Raw, tc.reads)
			}
			binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", admin, `{"user_id":5,"action":"logout"}`), 201)
			if r := binary.Call(t, "GET", p.Base+"/v1/users/5/events", admin, ""); !strings.Contains(r.Raw, "logout") {
				t.Fatalf("stale after a write: %s", r.Raw)
			}
			r := binary.Call(t, "GET", p.Base+"/readyz", "", "")
			if got, _ := r.Body["cache"].(string); got != tc.ready {
				t.Fatalf("/readyz cache = %q, want %q: %s", got, tc.ready, r.Raw)
			}
		})
	}
}
