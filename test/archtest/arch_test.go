// Package archtest enforces the dependency rule of docs/architecture.md
// (The rings) on the real import graph, as `go list` reports it:
//
//   - domain imports only the standard library; ports only it and domain;
//     app only it, domain and ports. None of them reaches net/http or
//     database/sql, directly or transitively.
//   - No adapter imports another adapter; the one exception is a registry
//     package above it (adapters/storage/memory may import adapters/storage).
//   - Only cmd/ and tests know concrete adapters.
//
// Test files (_test.go) are not checked: tests may import anything.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/activityd/activityd"

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string // direct imports of the non-test files
	Deps       []string // transitive imports
	Error      *struct{ Err string }
}

// graph is a set of packages by import path.
type graph map[string]pkg

// core lists each inner layer with the project packages it may import.
var core = []struct {
	layer   string
	allowed []string
}{
	{"domain", nil},
	{"ports", []string{"domain"}},
	{"app", []string{"domain", "ports"}},
}

// forbiddenStd are standard packages no inner layer may reach: the hexagon
// knows no protocol and no database.
var forbiddenStd = []string{"net/http", "database/sql"}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func inProject(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// under reports whether project-relative path r is dir or inside it.
func under(r, dir string) bool { return r == dir || strings.HasPrefix(r, dir+"/") }

func (g graph) isStd(path string) bool {
	if p, ok := g[path]; ok {
		return p.Standard
	}
	// Not listed (should not happen with -deps): the standard library's
	// paths have no dot in their first element.
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") && !inProject(path)
}

// chain returns the shortest import chain from one package to another:
// [from, ..., to], or nil if there is none.
func (g graph) chain(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, imp := range g[cur].Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return nil // not in the graph's imports: go list was inconsistent
}

// violation says why a package of layer l may not depend on dep, or "".
func (g graph) violation(l int, dep string) string {
	c := core[l]
	switch {
	case inProject(dep):
		dr := rel(dep)
		if under(dr, c.layer) {
			return ""
		}
		for _, a := range c.allowed {
			if under(dr, a) {
				return ""
			}
		}
		return "imports " + dep + " (allowed: the standard library" + allowedList(c.allowed) + ")"
	case !g.isStd(dep):
		return "imports non-standard package " + dep + " (only the standard library" + allowedList(c.allowed) + " is allowed)"
	}
	for _, f := range forbiddenStd {
		if dep == f || strings.HasPrefix(dep, f+"/") {
			return "imports " + dep + " (no protocol or database in the hexagon)"
		}
	}
	return ""
}

// checkCore applies the inner-layer rule to every package of domain, ports
// and app, on their transitive dependencies. Each offending import is
// reported once, where it enters: not again for every package above it
// (app is not blamed for what domain imports, nor domain for what net/http
// imports).
func checkCore(g graph) []string {
	var bad []string
	for _, path := range sortedKeys(g) {
		if !inProject(path) {
			continue
		}
		r := rel(path)
		for l, c := range core {
			if !under(r, c.layer) {
				continue
			}
			deps := g[path].Deps
			if deps == nil {
				deps = g[path].Imports
			}
			for _, dep := range deps {
				why := g.violation(l, dep)
				if why == "" {
					continue
				}
				chain := g.chain(path, dep)
				if len(chain) >= 2 {
					via := chain[len(chain)-2]
					if g.violation(l, via) != "" {
						continue // reported at via, where it entered
					}
					if inProject(via) && !under(rel(via), c.layer) {
						continue // reported for via's own layer
					}
				}
				how := strings.Join(chain, " -> ")
				if chain == nil {
					how = path + " -> ? -> " + dep
				}
				bad = append(bad, c.layer+": "+path+" "+why+"; chain: "+how)
			}
		}
	}
	return bad
}

func allowedList(layers []string) string {
	var s string
	for _, l := range layers {
		s += " + " + l
	}
	return s
}

// checkAdapters applies the adapter rules on direct imports: an adapter
// imports no other adapter except a registry package above it, and only
// cmd/ and test/ import adapters from outside adapters/.
func checkAdapters(g graph) []string {
	var bad []string
	for _, path := range sortedKeys(g) {
		if !inProject(path) {
			continue
		}
		r := rel(path)
		for _, imp := range g[path].Imports {
			if !inProject(imp) || !under(rel(imp), "adapters") {
				continue
			}
			ir := rel(imp)
			switch {
			case under(r, "adapters"):
				// Allowed: a strict ancestor below adapters/ itself, i.e. the
				// registry this adapter plugs into.
				if ir != "adapters" && ir != r && under(r, ir) {
					continue
				}
				bad = append(bad, "adapter "+path+" imports adapter "+imp+
					": no adapter may import another (only the registry package above it); wire them in cmd/")
			case under(r, "cmd"), under(r, "test"):
				// The composition root and test suites know concrete adapters.
			default:
				bad = append(bad, path+" imports adapter "+imp+": only cmd/ and tests may import adapters")
			}
		}
	}
	return bad
}

func sortedKeys(g graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// moduleRoot is the directory holding this module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(gomod, []byte("module "+module+"\n")) {
		t.Fatalf("%s is not the root of %s: %v", dir, module, err)
	}
	return dir
}

// goList runs `go list -e -json` with args in the module root.
func goList(t *testing.T, args ...string) graph {
	t.Helper()
	// go test puts its own GOROOT/bin first on PATH: this is the same go.
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Standard,Imports,Deps,Error"}, args...)...)
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		g[p.ImportPath] = p
	}
	return g
}

func report(t *testing.T, bad []string) {
	t.Helper()
	for _, b := range bad {
		t.Error(b)
	}
}

func TestCoreImportsOnlyStdlibAndInnerLayers(t *testing.T) {
	g := goList(t, "-deps", "./domain/...", "./ports/...", "./app/...")
	for _, c := range core {
		p, ok := g[module+"/"+c.layer]
		if !ok {
			t.Fatalf("go list did not report %s/%s: the rule would pass vacuously", module, c.layer)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
	}
	if p := g["fmt"]; !p.Standard {
		t.Fatal("go list did not mark fmt as standard: cannot tell the standard library apart")
	}
	report(t, checkCore(g))
}

func TestNoAdapterImportsAnotherAdapter(t *testing.T) {
	g := goList(t, "./...")
	if _, ok := g[module+"/domain"]; !ok {
		t.Fatal("go list ./... did not report domain")
	}
	report(t, checkAdapters(g))
}

// The checkers themselves catch what they should, with messages that name
// the offending import.
func TestCheckersCatchViolations(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	std := func(paths ...string) []pkg {
		var out []pkg
		for _, p := range paths {
			out = append(out, pkg{ImportPath: p, Standard: true})
		}
		return out
	}
	mk := func(ps ...pkg) graph {
		g := graph{}
		for _, p := range ps {
			g[p.ImportPath] = p
		}
		for _, p := range std("fmt", "net/http", "net/http/httptest", "database/sql", "database/sql/driver", "time", "context", "crypto/md5") {
			if _, ok := g[p.ImportPath]; !ok {
				g[p.ImportPath] = p
			}
		}
		return g
	}

	coreCases := []struct {
		name string
		g    graph
		want []string // substrings, one per violation
	}{
		{"clean", mk(
			pkg{ImportPath: m("domain"), Imports: []string{"fmt"}, Deps: []string{"fmt"}},
			pkg{ImportPath: m("ports"), Imports: []string{m("domain"), "context"}, Deps: []string{"context", "fmt", m("domain")}},
			pkg{ImportPath: m("app"), Imports: []string{m("domain"), m("ports")}, Deps: []string{"context", "fmt", m("domain"), m("ports")}},
			pkg{ImportPath: m("domain/sub"), Imports: []string{m("domain")}, Deps: []string{"fmt", m("domain")}},
		), nil},
		{"domain imports net/http", mk(
			pkg{ImportPath: m("domain"), Imports: []string{"net/http"}, Deps: []string{"net/http"}},
		), []string{"domain: " + m("domain") + " imports net/http"}},
		{"app reaches database/sql/driver", mk(
			pkg{ImportPath: m("app"), Imports: []string{"database/sql/driver"}, Deps: []string{"database/sql/driver"}},
		), []string{"imports database/sql/driver"}},
		{"domain imports ports", mk(
			pkg{ImportPath: m("domain"), Imports: []string{m("ports")}, Deps: []string{m("ports")}},
			pkg{ImportPath: m("ports")},
		), []string{"domain: " + m("domain") + " imports " + m("ports")}},
		{"ports imports app", mk(
			pkg{ImportPath: m("ports"), Imports: []string{m("app")}, Deps: []string{m("app")}},
			pkg{ImportPath: m("app")},
		), []string{"ports: " + m("ports") + " imports " + m("app")}},
		{"app imports a concrete adapter", mk(
			pkg{ImportPath: m("app"), Imports: []string{m("adapters/storage/memory")}, Deps: []string{m("adapters/storage/memory")}},
			pkg{ImportPath: m("adapters/storage/memory")},
		), []string{"app: " + m("app") + " imports " + m("adapters/storage/memory")}},
		{"domain imports a module: reported once, in domain", mk(
			pkg{ImportPath: m("domain"), Imports: []string{"github.com/google/uuid"}, Deps: []string{"crypto/md5", "github.com/google/uuid"}},
			pkg{ImportPath: m("ports"), Imports: []string{m("domain")}, Deps: []string{"crypto/md5", "github.com/google/uuid", m("domain")}},
			pkg{ImportPath: "github.com/google/uuid", Imports: []string{"crypto/md5"}},
		), []string{
			"domain: " + m("domain") + " imports non-standard package github.com/google/uuid (only the standard library is allowed); chain: " +
				m("domain") + " -> github.com/google/uuid",
		}},
		{"ports imports a module", mk(
			pkg{ImportPath: m("domain")},
			pkg{ImportPath: m("ports"), Imports: []string{m("domain"), "github.com/lib/pq"}, Deps: []string{"database/sql", "github.com/lib/pq", m("domain")}},
			pkg{ImportPath: "github.com/lib/pq", Imports: []string{"database/sql"}},
		), []string{
			"ports: " + m("ports") + " imports non-standard package github.com/lib/pq (only the standard library + domain is allowed)",
		}},
		{"domain reaches net/http through another standard package", mk(
			pkg{ImportPath: m("domain"), Imports: []string{"expvar"}, Deps: []string{"expvar", "net/http", "net/http/httptest"}},
			pkg{ImportPath: "expvar", Standard: true, Imports: []string{"net/http"}},
			pkg{ImportPath: "net/http", Standard: true, Imports: []string{"net/http/httptest"}},
		), []string{
			"domain: " + m("domain") + " imports net/http (no protocol or database in the hexagon); chain: " + m("domain") + " -> expvar -> net/http",
		}},
		{"app imports an adapter and what it imports", mk(
			pkg{ImportPath: m("app"), Imports: []string{m("adapters/storage/memory")}, Deps: []string{m("adapters/storage"), m("adapters/storage/memory")}},
			pkg{ImportPath: m("adapters/storage/memory"), Imports: []string{m("adapters/storage")}},
			pkg{ImportPath: m("adapters/storage")},
		), []string{"app: " + m("app") + " imports " + m("adapters/storage/memory") + " (allowed: the standard library + domain + ports)"}},
	}
	for _, tc := range coreCases {
		t.Run("core/"+tc.name, func(t *testing.T) {
			expect(t, checkCore(tc.g), tc.want)
		})
	}

	adapterCases := []struct {
		name string
		g    graph
		want []string
	}{
		{"clean", mk(
			pkg{ImportPath: m("adapters/storage"), Imports: []string{m("ports")}},
			pkg{ImportPath: m("adapters/storage/memory"), Imports: []string{m("adapters/storage"), m("domain")}},
			pkg{ImportPath: m("adapters/cache"), Imports: []string{m("ports")}},
			pkg{ImportPath: m("adapters/cache/redis/internal/x")},
			pkg{ImportPath: m("adapters/cache/redis"), Imports: []string{m("adapters/cache")}},
			pkg{ImportPath: m("adapters/http"), Imports: []string{m("app"), "net/http"}},
			pkg{ImportPath: m("cmd/activityd"), Imports: []string{m("adapters/storage/memory"), m("adapters/http"), m("adapters/storage")}},
			pkg{ImportPath: m("test/storagetest"), Imports: []string{m("adapters/storage/memory")}},
		), nil},
		{"storage adapter imports a cache adapter", mk(
			pkg{ImportPath: m("adapters/storage/postgres"), Imports: []string{m("adapters/storage"), m("adapters/cache/redis")}},
		), []string{"adapter " + m("adapters/storage/postgres") + " imports adapter " + m("adapters/cache/redis")}},
		{"sibling storage adapters", mk(
			pkg{ImportPath: m("adapters/storage/sqlite"), Imports: []string{m("adapters/storage/memory")}},
		), []string{"adapter " + m("adapters/storage/sqlite") + " imports adapter " + m("adapters/storage/memory")}},
		{"registry imports its adapter", mk(
			pkg{ImportPath: m("adapters/storage"), Imports: []string{m("adapters/storage/memory")}},
		), []string{"adapter " + m("adapters/storage") + " imports adapter " + m("adapters/storage/memory")}},
		{"http imports storage registry", mk(
			pkg{ImportPath: m("adapters/http"), Imports: []string{m("adapters/storage")}},
		), []string{"adapter " + m("adapters/http") + " imports adapter " + m("adapters/storage")}},
		{"prefix is not ancestry", mk(
			pkg{ImportPath: m("adapters/storagex/y"), Imports: []string{m("adapters/storage")}},
		), []string{"adapter " + m("adapters/storagex/y") + " imports adapter " + m("adapters/storage")}},
		{"adapter imports adapters root", mk(
			pkg{ImportPath: m("adapters/http"), Imports: []string{m("adapters")}},
		), []string{"imports adapter " + m("adapters") + ":"}},
		{"library package imports an adapter", mk(
			pkg{ImportPath: m("internal/wiring"), Imports: []string{m("adapters/storage/sqlite")}},
			pkg{ImportPath: m("app"), Imports: []string{m("adapters/http")}},
		), []string{
			m("app") + " imports adapter " + m("adapters/http") + ": only cmd/ and tests",
			m("internal/wiring") + " imports adapter " + m("adapters/storage/sqlite") + ": only cmd/ and tests",
		}},
	}
	for _, tc := range adapterCases {
		t.Run("adapters/"+tc.name, func(t *testing.T) {
			expect(t, checkAdapters(tc.g), tc.want)
		})
	}
}

func expect(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("violations = %q, want %d: %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("violation %d = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}
