package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// Memory test knobs (environment), for `make memory`'s full-size run.
const (
	memSecondsVar = "MEMORY_LOAD_SECONDS" // seconds of each load (default 6; issue 13: 60)
	memSeedVar    = "MEMORY_SEED_EVENTS"  // events seeded before the mixed load (default 100000)
	memUsersVar   = "MEMORY_USERS"        // users they are spread over (default 2000)
	memBoundVar   = "MEMORY_RSS_BOUND_MB" // the peak RSS asserted (default 300)
)

// memoryLoad is one load of issue 13's memory drills: the load tool's
// arguments, and the statuses besides the expected one it may be answered
// with (a shed request is fine; a 500, a 413 or a 431 where none is due is
// not).
type memoryLoad struct {
	name  string
	args  []string
	shed  []string // statuses tolerated besides the expected one
	needs string   // what it shows
}

// TestMemory runs the real binary with its default settings (SQLite, then
// PostgreSQL in a fresh schema) under issue 13's loads — 64 clients of
// 80% list reads and 20% creates; 128 unauthenticated clients sending
// ~1 MiB header blocks; 32 clients sending 1 MiB batches — and records the
// server's peak resident memory during each (VmHWM, reset before each load,
// and VmRSS sampled every 50 ms). The figures are logged; only a generous
// bound is asserted, so that a loaded CI machine stays deterministic. The
// target (docs/performance.md: 150 MB) is measured at full size by `make memory`
// (60 s loads).
func TestMemory(t *testing.T) {
	seconds := envInt(t, memSecondsVar, 6, 1, 3600)
	seed := envInt(t, memSeedVar, 100_000, 1000, 100_000_000)
	users := envInt(t, memUsersVar, 2000, 1, 10_000_000)
	bound := envInt(t, memBoundVar, 300, 1, 1<<20)
	load := buildLoadTool(t)
	d := strconv.Itoa(seconds) + "s"
	u := strconv.Itoa(users)
	loads := []memoryLoad{
		{"mixed", []string{"-scenario", "mixed", "-c", "64", "-d", d, "-users", u, "-limit", "50"},
			[]string{"503", "429"}, "the read cache and the list path under 64 clients"},
		{"headers", []string{"-scenario", "headers", "-c", "128", "-d", d, "-header-bytes", strconv.Itoa(1 << 20)},
			[]string{"503", "429"}, "the 64 KiB header limit: ~1 MiB header blocks are refused with 431, never buffered"},
		{"batches", []string{"-scenario", "batch", "-c", "32", "-d", d, "-users", u, "-batch", "1000",
			"-body-bytes", strconv.Itoa(1 << 20)}, []string{"503", "429"}, "1 MiB batch bodies, 32 at once"},
	}
	for _, store := range []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite", func(*testing.T) []string { return nil }}, // the default DATABASE_URL
		{"postgres", func(t *testing.T) []string {
			url, _ := testenv.PostgresSchema(t)
			return []string{"DATABASE_URL=" + url}
		}},
	} {
		t.Run(store.name, func(t *testing.T) {
			const token = "memory-admin-token-0123456789abcdef"
			env := append(store.env(t), "BOOTSTRAP_ADMIN_TOKEN="+token)
			p := binary.Start(t, t.TempDir(), env...)
			pid := p.PID()
			common := []string{"-url", p.Base, "-token", token, "-json", "-warmup", "0", "-timeout", "30s"}

			s, peak := measureRSS(t, pid, load, append(common, "-seed", strconv.Itoa(seed), "-users", u,
				"-c", "4", "-batch", "1000")...)
			if s.Events < int64(seed) {
				t.Fatalf("seed stored %d of %d events: %+v\n%s", s.Events, seed, s, tail(p.Logs()))
			}
			t.Logf("%s seed: %d events over %s users; peak RSS %d MB", store.name, s.Events, u, peak)

			for _, l := range loads {
				s, peak := measureRSS(t, pid, load, append(slices.Clone(common), l.args...)...)
				t.Logf("%s %s: peak RSS %d MB over %.1fs; %d requests, %d answered as expected, others %v (%s)",
					store.name, l.name, peak, s.Seconds, s.Requests, s.OK, s.ByStatus, l.needs)
				if s.Requests == 0 || s.OK == 0 {
					t.Errorf("%s %s: no request answered as expected: %+v\n%s", store.name, l.name, s, tail(p.Logs()))
				}
				for status, n := range s.ByStatus {
					if !slices.Contains(l.shed, status) && status != "net" {
						t.Errorf("%s %s: %d answers %s (only the expected one or a shed request is fine)",
							store.name, l.name, n, status)
					}
				}
				if peak > int64(bound) {
					t.Errorf("%s %s: peak RSS %d MB, above the bound of %d MB", store.name, l.name, peak, bound)
				}
				binary.Want(t, binary.Call(t, "GET", p.Base+"/healthz", "", ""), 200)
			}
			if err := p.Stop(t); err != nil {
				t.Errorf("SIGTERM exit: %v\n%s", err, tail(p.Logs()))
			}
		})
	}
}

// loadSummary is the part of the load tool's JSON line the test reads.
type loadSummary struct {
	Seconds  float64          `json:"seconds"`
	Requests int64            `json:"requests"`
	OK       int64            `json:"ok"`
	Events   int64            `json:"events"`
	ByStatus map[string]int64 `json:"errors_by_status"`
}

// measureRSS runs the load tool with args against the process pid and
// returns its summary and the process's peak resident memory in MB while
// it ran: VmHWM after a reset to the current RSS (clear_refs), or, where
// that is refused, the largest VmRSS sampled every 50 ms.
func measureRSS(t *testing.T, pid int, load string, args ...string) (loadSummary, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	var (
		out, errOut bytes.Buffer
		err         error
	)
	cmd := exec.CommandContext(ctx, load, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	peak := peakRSSDuring(t, pid, func() { err = cmd.Run() }) // exit 1 when some request failed: the summary says which
	if _, isExit := err.(*exec.ExitError); err != nil && (!isExit || cmd.ProcessState.ExitCode() != 1) {
		t.Fatalf("load %v: %v\n%s", args, err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var s loadSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("load %v: output %q: %v\n%s", args, out.String(), err, errOut.String())
	}
	return s, peak
}

// procStatusKB reads a "Name: N kB" line of /proc/PID/status.
func procStatusKB(pid int, name string) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}

// buildLoadTool builds the load generator (test/load) for this test.
func buildLoadTool(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "load")
	out, err := exec.Command("go", "build", "-o", path, "github.com/activityd/activityd/test/load").CombinedOutput()
	if err != nil {
		t.Fatalf("building the load tool: %v\n%s", err, out)
	}
	return path
}

// envInt reads an integer knob in [min, max], def when unset; a bad value
// fails the test.
func envInt(t *testing.T, name string, def, min, max int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		t.Fatalf("%s=%q: want an integer from %d to %d", name, v, min, max)
	}
	return n
}

// tail is the end of a log, for a failure message.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
