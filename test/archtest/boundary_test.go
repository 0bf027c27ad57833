package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The app boundary (docs/architecture.md, "The app boundary"): a driving
// adapter can obtain events or counts only through a use case that takes
// the principal, so authorisation cannot be skipped by forgetting a call.
//
//   - Every exported method or function of package app whose results carry
//     events, their history or counts takes a domain.Principal.
//   - The HTTP adapter never names a store port (ports.Events, ports.Counts,
//     ports.Store): it reaches data through app alone.

// carriesData lists the result types that hand out events or counts.
var carriesData = []string{"domain.Event", "domain.Page", "domain.Transition", "domain.CountPage", "domain.Count", "Listing", "BatchItem"}

// storePorts are the ports a driving adapter must not hold.
var storePorts = []string{"ports.Events", "ports.Counts", "ports.Store"}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return fset, files
}

// exprString renders a type expression as written (domain.Page, []BatchItem,
// Listing[domain.Page]).
func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.ArrayType:
		return "[]" + exprString(x.Elt)
	case *ast.MapType:
		return "map[" + exprString(x.Key) + "]" + exprString(x.Value)
	case *ast.IndexExpr:
		return exprString(x.X) + "[" + exprString(x.Index) + "]"
	case *ast.IndexListExpr:
		parts := make([]string, len(x.Indices))
		for i, ix := range x.Indices {
			parts[i] = exprString(ix)
		}
		return exprString(x.X) + "[" + strings.Join(parts, ", ") + "]"
	case *ast.FuncType:
		return "func"
	}
	return "?"
}

// mentions reports whether type expression s names one of names as a
// whole identifier (domain.Count, not domain.CountQuery).
func mentions(s string, names []string) bool {
	for _, n := range names {
		for i := 0; ; {
			j := strings.Index(s[i:], n)
			if j < 0 {
				break
			}
			end := i + j + len(n)
			if end == len(s) || !isIdentByte(s[end]) {
				if start := i + j; start == 0 || !isIdentByte(s[start-1]) {
					return true
				}
			}
			i = end
		}
	}
	return false
}

func isIdentByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// checkPrincipals returns the exported functions and methods of files
// whose results carry data but whose parameters hold no domain.Principal.
func checkPrincipals(fset *token.FileSet, files []*ast.File) []string {
	var bad []string
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() || fn.Type.Results == nil {
				continue
			}
			name := fn.Name.Name
			if fn.Recv != nil {
				recv := strings.TrimPrefix(exprString(fn.Recv.List[0].Type), "*")
				if recv == "" || !ast.IsExported(strings.SplitN(recv, "[", 2)[0]) {
					continue
				}
				name = recv + "." + name
			}
			carries := false
			for _, r := range fn.Type.Results.List {
				carries = carries || mentions(exprString(r.Type), carriesData)
			}
			if !carries {
				continue
			}
			takes := slices.ContainsFunc(fn.Type.Params.List, func(p *ast.Field) bool {
				return exprString(p.Type) == "domain.Principal"
			})
			if !takes {
				bad = append(bad, fset.Position(fn.Pos()).String()+": "+name+" returns events or counts without taking a domain.Principal")
			}
		}
	}
	return bad
}

// checkNoStorePorts returns the places files name a store port.
func checkNoStorePorts(fset *token.FileSet, files []*ast.File) []string {
	var bad []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && slices.Contains(storePorts, exprString(sel)) {
				bad = append(bad, fset.Position(sel.Pos()).String()+": names "+exprString(sel)+"; reach data through app")
			}
			return true
		})
	}
	return bad
}

func TestAppHandsOutDataOnlyForAPrincipal(t *testing.T) {
	fset, files := parseDir(t, filepath.Join(moduleRoot(t), "app"))
	if len(files) == 0 {
		t.Fatal("no files in app")
	}
	report(t, checkPrincipals(fset, files))
}

func TestHTTPAdapterHoldsNoStore(t *testing.T) {
	fset, files := parseDir(t, filepath.Join(moduleRoot(t), "adapters", "http"))
	if len(files) == 0 {
		t.Fatal("no files in adapters/http")
	}
	report(t, checkNoStorePorts(fset, files))
}

// TestBoundaryCheckersCatchViolations: the checkers above find what they
// are for, on sources written to break them.
func TestBoundaryCheckersCatchViolations(t *testing.T) {
	const src = `package app
func (s *Events) List(ctx context.Context, p domain.Principal, q domain.Query, view string) (Listing[domain.Page], error) {}
func (s *Events) ListFiltered(ctx context.Context, f domain.Filter) (domain.Page, error) {}
func (s *Events) Get(ctx context.Context, id string) (domain.Event, []domain.Transition, error) {}
func (s *Events) RecordBatch(ctx context.Context, ins []domain.NewEvent) ([]BatchItem, error) {}
func (c *Counts) Plan(ctx context.Context, now time.Time) ([]domain.Window, int, error) {}
func (c *Counts) Query(q domain.CountQuery) (domain.CountQuery, error) {}
func (s *Events) list(f domain.Filter) (domain.Page, error) {}
func Everything(st ports.Events) ports.Events { return st }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := checkPrincipals(fset, []*ast.File{f})
	var names []string
	for _, b := range got {
		names = append(names, strings.Fields(b)[1])
	}
	if want := []string{"Events.ListFiltered", "Events.Get", "Events.RecordBatch"}; !slices.Equal(names, want) {
		t.Errorf("checkPrincipals found %q, want %q", names, want)
	}
	if got := checkNoStorePorts(fset, []*ast.File{f}); len(got) != 2 {
		t.Errorf("checkNoStorePorts found %d, want 2: %q", len(got), got)
	}
}
