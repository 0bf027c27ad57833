package binary

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestServe: serve is ready with its address as Base, prints its admin
// token on stdout and not in its logs, answers HTTP, and stops on SIGTERM.
func TestServe(t *testing.T) {
	p := Serve.Within(30*time.Second).Start(t, t.TempDir(), "DATABASE_URL=memory:")
	if !strings.HasPrefix(p.Base, "http://127.0.0.1:") {
		t.Fatalf("Base %q", p.Base)
	}
	admin := p.BootstrapToken(t)
	if strings.Contains(p.Logs(), admin) || !strings.Contains(p.Logs(), `"msg":"activityd listening"`) {
		t.Fatalf("logs:\n%s", p.Logs())
	}
	Want(t, Call(t, "GET", p.Base+"/healthz", "", ""), 200)
	Want(t, Call(t, "GET", p.Base+"/v1/events", "", ""), 401)
	Want(t, Call(t, "GET", p.Base+"/v1/events", admin, ""), 200)
	Want(t, CallBearer(t, "GET", p.Base+"/v1/events", "not-a-jwt", ""), 401)
	if err := p.Stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
	}
}

// TestRun: a one-shot subcommand's output and exit code come back.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	if out, errOut, code := Run(t, dir, nil, "version"); code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := Run(t, dir, []string{"LOG_LEVEL=loud"}, "serve"); code == 0 || !strings.Contains(errOut, "LOG_LEVEL") {
		t.Fatalf("serve with a bad LOG_LEVEL: exit %d, stderr %q", code, errOut)
	}
}
