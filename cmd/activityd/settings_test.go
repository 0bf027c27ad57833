package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// recordingEnv is an environment that remembers every name asked for.
type recordingEnv struct {
	vars  map[string]string
	asked map[string]bool
}

func (r *recordingEnv) get(name string) string {
	r.asked[name] = true
	return r.vars[name]
}

// tableNames is every name the settings table lists (aliases too), by
// the setting that lists it.
func tableNames(t *testing.T) map[string]setting {
	t.Helper()
	names := map[string]setting{}
	for _, s := range settings {
		if !slices.Contains(settingGroups, s.Group) {
			t.Errorf("%s: group %q is not in settingGroups: it would never be printed", s.Name, s.Group)
		}
		if s.Default == "" || s.Meaning == "" {
			t.Errorf("%s: a setting needs a default and a meaning", s.Name)
		}
		for _, n := range s.names() {
			if _, dup := names[n]; dup {
				t.Errorf("%s listed twice", n)
			}
			names[n] = s
		}
	}
	return names
}

// TestSettingsListEveryVariable holds the settings table to what
// loadConfig reads, both ways: every variable loadConfig asks for is
// listed, and every one listed (but the OpenTelemetry SDK's) is asked for.
func TestSettingsListEveryVariable(t *testing.T) {
	names := tableNames(t)
	asked := map[string]bool{}
	// Unset variables make loadConfig ask for every name of a setting;
	// the others take the branches that ask for more.
	for _, vars := range []map[string]string{
		nil,
		{"CORS_ALLOWED_ORIGINS": "https://app.example.com", "CORS_ALLOW_CREDENTIALS": "true", "CORS_MAX_AGE": "10m"},
		{"HTTP_CORS_ALLOWED_ORIGINS": "https://app.example.com", "HTTP_CORS_MAX_AGE_HOURS_CACHE": "2"},
		{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:write", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8"},
		{"AUTH_FAILURE_LIMIT": "0", "RATE_LIMIT": "5", "GOGC": "100", "GOMEMLIMIT": "1GiB", "MEMORY_LIMIT": "1GiB"},
		{"ACTIONS": "*", "REDIS_URL": "redis://127.0.0.1:6379", "PPROF_ADDR": "127.0.0.1:6060", "METRICS_ADDR": ":9464"},
	} {
		r := &recordingEnv{vars: vars, asked: map[string]bool{}}
		if _, err := loadConfig(r.get); err != nil {
			t.Fatalf("loadConfig(%v): %v", vars, err)
		}
		maps.Copy(asked, r.asked)
	}
	for _, n := range slices.Sorted(maps.Keys(asked)) {
		if _, ok := names[n]; !ok {
			t.Errorf("loadConfig reads %s, which the settings table (settings.go) does not list: "+
				"add it, with its default and meaning, and to README.md's Configuration table", n)
		}
	}
	for _, s := range settings {
		if s.Group == groupTelemetry {
			continue
		}
		for _, n := range s.names() {
			if !asked[n] {
				t.Errorf("the settings table lists %s, which loadConfig never reads", n)
			}
		}
	}
}

// envReaders are the functions and methods whose string arguments name
// environment variables.
var envReaders = map[string]bool{
	"first": true, "str": true, "duration": true, "days": true, "integer": true, "oneOf": true,
	"addr": true, "get": true, "getenv": true, "Getenv": true, "LookupEnv": true,
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// envLiterals returns the variable names the Go files of dir (tests
// excluded) pass to an env reader, as literals or as constants.
func envLiterals(t *testing.T, dir string) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	// The constants of the package first: `const scopesVar = "..."`.
	consts := map[string]string{}
	var parsed []*ast.File
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		ast.Inspect(f, func(n ast.Node) bool {
			if d, ok := n.(*ast.GenDecl); ok && d.Tok == token.CONST {
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[name.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
			return true
		})
	}
	found := map[string]bool{}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			if !envReaders[fn] {
				return true
			}
			for _, arg := range call.Args {
				var v string
				switch a := arg.(type) {
				case *ast.BasicLit:
					if a.Kind == token.STRING {
						v, _ = strconv.Unquote(a.Value)
					}
				case *ast.Ident:
					v = consts[a.Name]
				}
				if envName.MatchString(v) {
					found[v] = true
				}
			}
			return true
		})
	}
	return found
}

// TestSettingsListEveryVariableInTheCode reads the code rather than runs
// it: a variable read on a branch the test above does not take is caught
// here, and so are the OpenTelemetry variables the telemetry adapter
// reads itself.
func TestSettingsListEveryVariableInTheCode(t *testing.T) {
	names := tableNames(t)
	read := envLiterals(t, ".")
	if !read["DATABASE_URL"] || !read["EVENT_TRACKING_ANONYMOUS_SCOPES"] || !read["GOGC"] {
		t.Fatalf("the scan of the code missed known variables (found %v): fix the test", slices.Sorted(maps.Keys(read)))
	}
	for n := range envLiterals(t, filepath.Join("..", "..", "adapters", "telemetry")) {
		if !strings.HasPrefix(n, "OTEL_") {
			t.Errorf("the telemetry adapter reads %s; list it in settings.go (and in this test if it is not an OTEL_ variable)", n)
		}
		read[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(read)) {
		if _, ok := names[n]; !ok {
			t.Errorf("the code reads %s, which the settings table (settings.go) does not list", n)
		}
	}
	for n, s := range names {
		if s.Group != groupTelemetry && !read[n] {
			t.Errorf("the settings table lists %s, which no code reads by that name", n)
		}
	}
}

// TestSettingsInREADME: the README's Configuration table names every
// setting the help lists.
func TestSettingsInREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		for _, n := range s.names() {
			if !bytes.Contains(readme, []byte("`"+n+"`")) && !bytes.Contains(readme, []byte("`"+n+"=")) {
				t.Errorf("README.md does not mention `%s`", n)
			}
		}
	}
}

// TestSecretSettingsAreMarked: a variable whose name says it holds a
// secret is never printed by activityd config.
func TestSecretSettingsAreMarked(t *testing.T) {
	looksSecret := regexp.MustCompile(`SECRET|TOKEN|PASSWORD|OTLP.*HEADERS|_KEY$|API_?KEY`)
	for _, s := range settings {
		if looksSecret.MatchString(s.Name) && !s.Secret {
			t.Errorf("%s looks like a secret but is not marked Secret", s.Name)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stdout
	}{
		{"--help names the commands and help config", []string{"--help"}, 0,
			[]string{"serve", "worker", "scheduler", "migrate", "token", "import", "config", "activityd help config"}},
		{"help", []string{"help"}, 0, []string{"activityd help config"}},
		{"help config", []string{"help", "config"}, 0, []string{"activityd config", "default: sqlite:./data/activity.db", "default: " + DefaultCountSchedule}},
		{"config -h", []string{"config", "-h"}, 0, []string{"activityd help config"}},
		{"help on nothing known", []string{"help", "nothing"}, 2, nil},
		{"config with an argument", []string{"config", "extra"}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestHelpConfigListsEverySetting: each setting, its aliases, default
// and meaning are in `activityd help config`, under its group.
func TestHelpConfigListsEverySetting(t *testing.T) {
	_, out, _ := runCLI(t, nil, "help", "config")
	flat := strings.Join(strings.Fields(out), " ") // the meanings are wrapped
	for _, g := range settingGroups {
		if !strings.Contains(out, "\n"+g+"\n") {
			t.Errorf("no group %q", g)
		}
	}
	for _, s := range settings {
		head := "\n  " + s.Name
		if len(s.Aliases) > 0 {
			head += " (" + strings.Join(s.Aliases, ", ") + ")"
		}
		i := strings.Index(out, head+"\n")
		if i < 0 {
			t.Errorf("%s is not listed (want a line %q)", s.Name, head)
			continue
		}
		if !strings.HasPrefix(out[i+len(head)+1:], "      default: "+s.Default+"\n") {
			t.Errorf("%s: its default %q does not follow", s.Name, s.Default)
		}
		if !strings.Contains(flat, strings.Join(strings.Fields(s.Meaning), " ")) {
			t.Errorf("%s: meaning missing", s.Name)
		}
	}
}

// configLines parses activityd config's output: setting → value, source
// (printed setting, source, value).
func configLines(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := map[string][2]string{}
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
		if len(f) != 3 {
			t.Fatalf("line %q: want setting, value, source", l)
		}
		lines[f[0]] = [2]string{f[2], f[1]}
	}
	return lines
}

func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want map[string][2]string // setting → value, source
	}{
		{"defaults", nil, map[string][2]string{
			"HTTP_ADDR":         {":8080", "default"},
			"DATABASE_URL":      {"sqlite:" + filepath.Join(dir, "data", "activity.db"), "default"},
			"COUNT_SCHEDULE":    {DefaultCountSchedule, "default"},
			"COUNT_SETTLE":      {"15s", "default"},
			"JWT_SECRET":        {"unset", "default"},
			"CORS_MAX_AGE":      {"unset: browsers keep a preflight 5s", "default"},
			"OTEL_SDK_DISABLED": {"false", "default"},
		}},
		{"from the environment, aliases named", map[string]string{
			"HTTP_PORT": "9090", "DB_URL": "sqlite:rel/x.db", "CRON_TAB_COUNT_USERS_EVENT_TASK": "@hourly",
			"RETENTION": "90d", "OTEL_SERVICE_NAME": "svc", "GOGC": "50",
		}, map[string][2]string{
			"HTTP_ADDR":         {":9090", "env HTTP_PORT"},
			"DATABASE_URL":      {"sqlite:" + filepath.Join(dir, "rel", "x.db"), "env DB_URL"},
			"COUNT_SCHEDULE":    {"@hourly", "env CRON_TAB_COUNT_USERS_EVENT_TASK"},
			"RETENTION":         {"2160h0m0s", "env"},
			"OTEL_SERVICE_NAME": {"svc", "env"},
			"GOGC":              {"(the runtime's)", "env"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.env, "config")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := configLines(t, out)
			for _, s := range settings {
				if _, ok := got[s.Name]; !ok {
					t.Errorf("%s not printed", s.Name)
				}
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %q, want %q", k, got[k], w)
				}
			}
		})
	}
}

// TestConfigCommandHidesSecrets: no secret value appears in what
// activityd config prints, whether the configuration is good or not.
func TestConfigCommandHidesSecrets(t *testing.T) {
	const (
		pgPassword    = "pg-Pa55word-4"
		redisPassword = "redis-Pa55word-7"
		jwtSecret     = "jwt-secret-that-is-long-enough-0123456789"
		adminToken    = "adt_bootstrap-admin-secret-42"
		otlpHeader    = "otlp-api-key-99"
		jwksPassword  = "jwks-pw-5"
		queryPassword = "query-pw-8"
	)
	secrets := []string{pgPassword, redisPassword, jwtSecret, adminToken, otlpHeader, jwksPassword, queryPassword}
	good := map[string]string{
		"DATABASE_URL":               "postgres://activityd:" + pgPassword + "@db.internal:5432/activity?sslmode=disable&password=" + queryPassword,
		"REDIS_URL":                  "redis://:" + redisPassword + "@cache.internal:6379/0",
		"JWT_SECRET":                 jwtSecret,
		"JWT_JWKS_URL":               "https://reader:" + jwksPassword + "@idp.example.com/keys",
		"BOOTSTRAP_ADMIN_TOKEN":      adminToken,
		"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + otlpHeader,
	}
	bad := maps.Clone(good)
	bad["JWT_SECRET"] = "short-" + jwtSecret[:10] // too short: an error naming JWT_SECRET
	bad["REDIS_URL"] = "redis://:" + redisPassword + "@h1:6379,h2:6379"
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantCode int
	}{
		{"good configuration", good, 0},
		{"bad configuration", bad, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.env, "config")
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, errOut)
			}
			for _, s := range append(secrets, tc.env["JWT_SECRET"]) {
				if strings.Contains(out+errOut, s) {
					t.Errorf("the secret %q is printed:\n%s\n%s", s, out, errOut)
				}
			}
			got := configLines(t, out)
			for _, k := range []string{"JWT_SECRET", "BOOTSTRAP_ADMIN_TOKEN", "OTEL_EXPORTER_OTLP_HEADERS"} {
				if got[k] != [2]string{hidden, "env"} {
					t.Errorf("%s = %q, want %q from env", k, got[k], hidden)
				}
			}
			// What is not secret stays readable.
			if v := got["DATABASE_URL"][0]; !strings.HasPrefix(v, "postgres://activityd:xxxxx@db.internal:5432/activity?") {
				t.Errorf("DATABASE_URL = %q", v)
			}
			if v := got["REDIS_URL"][0]; !strings.Contains(v, "xxxxx@") {
				t.Errorf("REDIS_URL = %q", v)
			}
		})
	}
}
