package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// tokenEnv is a token command's configuration over a fresh SQLite file.
type tokenEnv struct {
	t   *testing.T
	cfg config
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	cfg, err := loadConfig(envOf(map[string]string{"DATABASE_URL": testenv.SQLiteURL(t)}))
	if err != nil {
		t.Fatal(err)
	}
	return &tokenEnv{t: t, cfg: cfg}
}

// run runs "activityd token args..." with stdin, and returns its output
// and error.
func (e *tokenEnv) run(stdin string, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	err = tokenCommand(context.Background(), e.cfg, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// tokens opens the store and returns its tokens and the use cases.
func (e *tokenEnv) tokens() ([]domain.Token, *app.Tokens) {
	e.t.Helper()
	st, err := storage.Open(context.Background(), e.cfg.DatabaseURL, storage.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	list, err := st.ListTokens(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return list, app.NewTokens(st, ports.SystemClock)
}

// wantAuth checks secret authenticates as user with scopes.
func (e *tokenEnv) wantAuth(secret string, user int64, scopes ...domain.Scope) {
	e.t.Helper()
	_, ts := e.tokens()
	p, err := ts.Authenticate(context.Background(), secret)
	if err != nil || p.UserID != user || !slices.Equal(p.Scopes, scopes) {
		e.t.Errorf("Authenticate = %+v, %v; want user %d with %v", p, err, user, scopes)
	}
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

const (
	drfKey1 = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
	drfKey2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
	drfKey3 = "aaaabbbbccccddddeeeeffff0000111122223333"
)

func TestTokenImportOne(t *testing.T) {
	e := newTokenEnv(t)
	out, _, err := e.run(drfKey1+"\n", "import", "--user", "6", "--scope", "events:read,events:write", "--name", "mobile app")
	if err != nil || !strings.HasPrefix(out, "imported 1, already present 0") {
		t.Fatalf("import = %q, %v", out, err)
	}
	e.wantAuth(drfKey1, 6, domain.ScopeRead, domain.ScopeWrite)
	list, _ := e.tokens()
	if len(list) != 1 || list[0].Name != "mobile app" || list[0].UserID != 6 {
		t.Errorf("stored %+v", list)
	}
	// Idempotent: the same again is already present.
	out, _, err = e.run(drfKey1, "import", "--user", "6")
	if err != nil || !strings.HasPrefix(out, "imported 0, already present 1") {
		t.Errorf("re-run = %q, %v", out, err)
	}
	// Scopes default to read and write; --scope narrows them.
	if _, _, err := e.run("  "+drfKey2+"  \r\n\n", "import", "--user", "7", "--scope", "events:read"); err != nil {
		t.Fatal(err)
	}
	e.wantAuth(drfKey2, 7, domain.ScopeRead)

	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"the secret as a flag", drfKey3, []string{"import", "--user", "6", "--secret", drfKey3}},
		{"the secret as an argument", "", []string{"import", "--user", "6", drfKey3}},
		{"another user's secret", drfKey1, []string{"import", "--user", "8"}},
		{"other scopes", drfKey1, []string{"import", "--user", "6", "--scope", "events:read"}},
		{"too short", "0123456789abcde", []string{"import", "--user", "6"}},
		{"a space inside", "0123456789 abcdef0123456", []string{"import", "--user", "6"}},
		{"two lines", drfKey3 + "\n" + drfKey2 + "\n", []string{"import", "--user", "6"}},
		{"nothing on stdin", "\n", []string{"import", "--user", "6"}},
		{"no user", drfKey3, []string{"import"}},
		{"a bad scope", drfKey3, []string{"import", "--user", "6", "--scope", "events:all"}},
		{"--file with --user", drfKey3 + " 6\n", []string{"import", "--file", "-", "--user", "6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := e.run(tc.stdin, tc.args...)
			if !isUsage(err) {
				t.Errorf("err = %v, want a usage error", err)
			}
			for _, s := range []string{out, errOut, errString(err)} {
				for _, k := range []string{drfKey1, drfKey2, drfKey3} {
					if strings.Contains(s, k) {
						t.Errorf("output shows a secret: %q", s)
					}
				}
			}
		})
	}
	if list, _ := e.tokens(); len(list) != 2 {
		t.Errorf("%d tokens stored, want 2", len(list))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTokenImportFile(t *testing.T) {
	e := newTokenEnv(t)
	good := "# DRF tokens, exported\n\n" +
		drfKey1 + " 6\n" +
		drfKey2 + "\t7  events:read   web front end\r\n" +
		"   # indented comment\n" +
		drfKey3 + " 3000000000 events:read,events:write,admin\n"
	path := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}

	// A bad line: nothing of the file is stored, and every bad line is
	// reported with its number.
	for _, tc := range []struct {
		name, file string
		lines      []string
	}{
		{"malformed lines", good + "lonely-secret-0123456789\n" + drfKey1 + "x six\n" + drfKey1 + "y 6 events:all\n",
			[]string{"line 7:", "line 8:", "line 9:"}},
		{"rules broken", good + "short 6\n" + drfKey1 + " 9\n" + "0123456789abcdef0123 8\n" + "0123456789abcdef0123 9\n",
			[]string{"line 7:", "line 8:", "line 10:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.run(tc.file, "import", "--file", "-")
			if !isUsage(err) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			for _, l := range tc.lines {
				if !strings.Contains(err.Error(), l) {
					t.Errorf("error does not report %s: %v", l, err)
				}
			}
			if strings.Count(err.Error(), "line ") != len(tc.lines) {
				t.Errorf("error reports other lines than %v: %v", tc.lines, err)
			}
			if strings.Contains(err.Error(), drfKey1) {
				t.Errorf("error shows a secret: %v", err)
			}
			if list, _ := e.tokens(); len(list) != 0 {
				t.Errorf("%d tokens stored from a refused file", len(list))
			}
		})
	}

	out, _, err := e.run("", "import", "--file", path)
	if err != nil || out != "imported 3, already present 0\n" {
		t.Fatalf("import --file = %q, %v", out, err)
	}
	e.wantAuth(drfKey1, 6, domain.ScopeRead, domain.ScopeWrite)
	e.wantAuth(drfKey2, 7, domain.ScopeRead)
	e.wantAuth(drfKey3, 3000000000, domain.ScopeRead, domain.ScopeWrite, domain.ScopeAdmin)
	list, _ := e.tokens()
	var names []string
	for _, tk := range list {
		names = append(names, tk.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"imported", "imported", "web front end"}) {
		t.Errorf("names %q", names)
	}

	// Again, from standard input, with one more: idempotent.
	more := good + "fedcba9876543210fedcba 8\n"
	out, _, err = e.run(more, "import", "--file", "-")
	if err != nil || out != "imported 1, already present 3\n" {
		t.Errorf("re-run = %q, %v", out, err)
	}
	if list, _ := e.tokens(); len(list) != 4 {
		t.Errorf("%d tokens stored, want 4", len(list))
	}
	// An empty file, a missing one.
	if _, _, err := e.run("# nothing\n", "import", "--file", "-"); !isUsage(err) {
		t.Errorf("empty file: %v", err)
	}
	if _, _, err := e.run("", "import", "--file", filepath.Join(t.TempDir(), "none")); !isUsage(err) {
		t.Errorf("missing file: %v", err)
	}
}
