package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// TestPprof: with PPROF_ADDR on loopback, serve, worker and scheduler each
// serve net/http/pprof on a listener of its own, logged at start, which
// goes away with the process; serve's API port never serves it.
func TestPprof(t *testing.T) {
	for _, tc := range []struct {
		cmd       binary.Command
		needRedis bool
	}{
		{binary.Serve, false},
		{binary.Worker, true},
		{binary.Scheduler, true},
	} {
		t.Run(tc.cmd.Name, func(t *testing.T) {
			env := []string{"DATABASE_URL=memory:", "PPROF_ADDR=127.0.0.1:0"}
			if tc.needRedis {
				// A private Redis: asynq's keys have no prefix to keep tests apart.
				addr, _, _ := testenv.StartRedis(t)
				env = append(env, "REDIS_URL=redis://"+addr+"/0")
			}
			p := tc.cmd.Start(t, t.TempDir(), env...)
			base := pprofBase(t, p)

			for _, c := range []struct{ path, want string }{
				{"/debug/pprof/", "Types of profiles available"},
				{"/debug/pprof/heap?debug=1", "heap profile:"},
				{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
				{"/debug/pprof/cmdline", tc.cmd.Name},
			} {
				status, body := pprofGet(t, base+c.path)
				if status != 200 || !strings.Contains(body, c.want) {
					t.Errorf("GET %s: %d, want 200 with %q; body:\n%.500s", c.path, status, c.want, body)
				}
			}
			if p.Base != "" { // serve: the API port
				for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
					if r := binary.Call(t, "GET", p.Base+path, "", ""); r.Status != 404 || strings.Contains(r.Raw, "profile") {
						t.Errorf("API port GET %s: %d, want 404; body:\n%.300s", path, r.Status, r.Raw)
					}
				}
			}
			for line := range strings.Lines(p.Logs()) {
				if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "PPROF") {
					t.Errorf("a warning with a loopback PPROF_ADDR: %s", line)
				}
			}

			if err := p.Stop(t); err != nil {
				t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
			}
			c := http.Client{Timeout: 5 * time.Second}
			if res, err := c.Get(base + "/debug/pprof/"); err == nil {
				res.Body.Close()
				t.Errorf("the pprof listener still answers after the process stopped: %d", res.StatusCode)
			}
		})
	}
}

// TestPprofRefusesRemote: a PPROF_ADDR that is not loopback stops every
// subcommand at start with a message naming it, before anything listens.
func TestPprofRefusesRemote(t *testing.T) {
	for _, addr := range []string{":6060", "0.0.0.0:6060", "10.1.2.3:6060"} {
		for _, cmd := range []string{"serve", "worker", "scheduler"} {
			t.Run(cmd+" "+addr, func(t *testing.T) {
				env := []string{"DATABASE_URL=memory:", "PPROF_ADDR=" + addr, "REDIS_URL=redis://127.0.0.1:1/0"}
				_, errOut, code := binary.Run(t, t.TempDir(), env, cmd)
				if code != 2 || !strings.Contains(errOut, "PPROF_ADDR") || !strings.Contains(errOut, "PPROF_ALLOW_REMOTE=true") {
					t.Errorf("exit %d, stderr %q; want 2 and a message naming PPROF_ADDR and PPROF_ALLOW_REMOTE=true", code, errOut)
				}
			})
		}
	}
}

// pprofBase is the http://host:port of p's PPROF_ADDR listener, from its
// "serving pprof" log line.
func pprofBase(t *testing.T, p *binary.Proc) string {
	t.Helper()
	for line := range strings.Lines(p.Logs()) {
		var rec struct{ Msg, Addr, Path string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving pprof" {
			if rec.Path != "/debug/pprof/" {
				t.Errorf("serving pprof: path %q", rec.Path)
			}
			return "http://" + rec.Addr
		}
	}
	t.Fatalf("no \"serving pprof\" log line:\n%s", p.Logs())
	return ""
}

// pprofGet GETs url and returns the status and body.
func pprofGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
