package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCLI runs activityd with args in the environment env.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, envOf(env), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestStoreNotice: each command that opens a store says which on
// standard error, once, and warns when it is about to create an empty
// SQLite file.
func TestStoreNotice(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	abs := func(p string) string { return filepath.Join(dir, p) }
	creating := "no store at "
	for _, tc := range []struct {
		name         string
		dbURL        string // "": DATABASE_URL unset
		args         []string
		wantStore    string
		wantCreating bool
		wantEphem    bool
	}{
		{"token in a new directory: the default store, created", "", []string{"token", "list"},
			"sqlite:" + abs("data/activity.db"), true, false},
		{"token again: the same store, there now", "", []string{"token", "list"},
			"sqlite:" + abs("data/activity.db"), false, false},
		{"migrate of a relative path: said absolute", "sqlite:other/a.db", []string{"migrate"},
			"sqlite:" + abs("other/a.db"), true, false},
		{"migrate again", "sqlite:other/a.db", []string{"migrate"},
			"sqlite:" + abs("other/a.db"), false, false},
		{"token in a store given by an absolute path", "sqlite://" + abs("other/a.db"), []string{"token", "list"},
			"sqlite:" + abs("other/a.db"), false, false},
		{"token create in memory: kept nowhere", "memory:", []string{"token", "create", "--admin"},
			"memory:", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"LOG_LEVEL": "warn"}
			if tc.dbURL != "" {
				env["DATABASE_URL"] = tc.dbURL
			}
			code, out, errOut := runCLI(t, env, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			cmd := tc.args[0]
			want := "activityd " + cmd + ": store " + tc.wantStore + "\n"
			if n := strings.Count(errOut, "activityd "+cmd+": store "); n != 1 || !strings.Contains(errOut, want) {
				t.Errorf("stderr %q: want %q once", errOut, want)
			}
			if got := strings.Contains(errOut, creating); got != tc.wantCreating {
				t.Errorf("stderr %q: warns of a new store %v, want %v", errOut, got, tc.wantCreating)
			}
			if tc.wantCreating && !strings.Contains(errOut, "DATABASE_URL") {
				t.Errorf("the warning %q does not say how to choose the store", errOut)
			}
			if got := strings.Contains(errOut, "keeps nothing"); got != tc.wantEphem {
				t.Errorf("stderr %q: warns of an ephemeral store %v, want %v", errOut, got, tc.wantEphem)
			}
			if strings.Contains(out, "store") {
				t.Errorf("the notice went to stdout %q: it must stay the command's output alone", out)
			}
			if path, ok := strings.CutPrefix(tc.wantStore, "sqlite:"); ok {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("the store said is not the one opened: %v", err)
				}
			}
		})
	}
}

func TestDescribeStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		url, want string
		creating  bool
	}{
		{"memory:", "memory:", false},
		{"sqlite::memory:", "sqlite::memory:", false},
		{"sqlite:./data/activity.db", "sqlite:" + filepath.Join(dir, "data", "activity.db"), true},
		{"sqlite:///srv/x.db?_pragma=foo", "sqlite:/srv/x.db", true},
		{"postgres://app:s3cret@db:5432/activity?sslmode=disable", "postgres://app:xxxxx@db:5432/activity?sslmode=disable", false},
		{"postgres://app@db/activity?password=s3cret", "postgres://app@db/activity?password=xxxxx", false},
		{"postgresql://db/activity", "postgresql://db/activity", false},
	} {
		got := describeStore(tc.url)
		if got.Name != tc.want || got.Creating != tc.creating {
			t.Errorf("describeStore(%q) = %+v, want %q creating=%v", tc.url, got, tc.want, tc.creating)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:pw@cache:6379/0":            "redis://:xxxxx@cache:6379/0",
		"redis://user:pw@h1:6379,h2:6379":     "redis://user:xxxxx@h1:6379,h2:6379",
		"rediss://user:pw@h1:6379, h2:6379/0": "rediss://xxxxx@h1:6379, h2:6379/0",
		"sqlite:/srv/logger/db.sqlite3":       "sqlite:/srv/logger/db.sqlite3",
		"https://idp.example.com/keys":        "https://idp.example.com/keys",
		"0 */4 * * *":                         "0 */4 * * *",
		":8080":                               ":8080",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLogDurations: durations are logged as people write them ("15s"),
// not in nanoseconds, in both formats, in groups too.
func TestLogDurations(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"json", []string{`"settle":"15s"`, `"job":{"took":"1m30s"}`}},
		{"text", []string{"settle=15s", "job.took=1m30s"}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(config{LogFormat: tc.format, LogLevel: "info"}, &buf)
			log.Info("counting", "settle", 15*time.Second, slog.Group("job", "took", 90*time.Second))
			log.LogAttrs(context.Background(), slog.LevelInfo, "again", slog.Duration("settle", 15*time.Second))
			plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(buf.String(), "") // tint's colours
			for _, w := range tc.want {
				if !strings.Contains(plain, w) {
					t.Errorf("log %q lacks %q", plain, w)
				}
			}
			if strings.Contains(buf.String(), "15000000000") {
				t.Errorf("a duration in nanoseconds: %q", buf.String())
			}
		})
	}
}
