package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// TestOpenAPIDocument: the embedded document is a valid OpenAPI 3.0
// document, every operation can be told apart, and every error response
// is a problem document.
func TestOpenAPIDocument(t *testing.T) {
	doc := mustOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	for _, name := range []string{"bearer", "token"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("no security scheme %q", name)
		}
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q is also %s's", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			public := op.Security != nil && len(*op.Security) == 0
			if !public && op.Responses.Status(http.StatusUnauthorized) == nil {
				t.Errorf("%s: needs credentials but documents no 401", where)
			}
			for code, ref := range op.Responses.Map() {
				if code >= "400" && ref.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s: %s is not application/problem+json", where, code)
				}
			}
		}
	}
}

// TestOpenAPIDrift: every route the router serves is in the document with
// its method, and every operation of the document is served.
func TestOpenAPIDrift(t *testing.T) {
	doc := mustOpenAPI(t)
	// Every optional surface on: /v1/activity-counts, /v1/changes,
	// /v1/webhooks, the evidence routes, the web UI and /metrics.
	st := memory.New()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(httpapi.Config{
		Events:       app.NewEvents(st, ports.SystemClock, domain.DefaultLimits()),
		Counts:       app.NewCounts(st, ports.SystemClock, app.CountsConfig{Schedule: every4h{}}),
		Feed:         app.NewFeed(st, 0),
		Webhooks:     app.NewWebhooks(st, st, nil, app.WebhooksConfig{}),
		Evidence:     app.NewEvidence(st, app.EvidenceConfig{Key: key, Clock: ports.SystemClock}),
		AuthDisabled: true,
		UI:           http.NotFoundHandler(),
		Metrics:      http.NotFoundHandler(),
	})
	served := map[string]bool{}
	err = chi.Walk(srv.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[method+" "+documentedPath(doc, route)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, r := range slices.Sorted(maps.Keys(served)) {
		if !documented[r] {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(documented)) {
		if !served[r] {
			t.Errorf("%s is in openapi.yaml but not served", r)
		}
	}
}

// TestOpenAPIServed: /openapi.yaml is the embedded document and
// /openapi.json the same document as JSON; both parse as OpenAPI.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t)
	y := f.do("GET", "/openapi.yaml", "", "").want(http.StatusOK)
	if ct := y.hdr.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("/openapi.yaml: Content-Type %q", ct)
	}
	if string(y.body) != string(httpapi.OpenAPIYAML) {
		t.Error("/openapi.yaml is not the embedded document")
	}
	j := f.do("GET", "/openapi.json", "", "").want(http.StatusOK)
	if ct := j.hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/openapi.json: Content-Type %q", ct)
	}
	if !json.Valid(j.body) {
		t.Fatal("/openapi.json is not JSON")
	}
	want := mustOpenAPI(t)
	for name, body := range map[string][]byte{"yaml": y.body, "json": j.body} {
		got, err := openapi3.NewLoader().LoadFromData(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := got.Validate(context.Background()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if g, w := slices.Sorted(maps.Keys(got.Paths.Map())), slices.Sorted(maps.Keys(want.Paths.Map())); !slices.Equal(g, w) {
			t.Errorf("%s: paths %q, want %q", name, g, w)
		}
	}
	// Served without credentials, also to HEAD.
	f.do("HEAD", "/openapi.json", "", "").want(http.StatusOK)
}

// TestDocsPage: /docs is Swagger UI on /openapi.json, and loads nothing
// from elsewhere: every URL in the page is local and served with the
// right media type, and the Content-Security-Policy allows only this
// origin.
func TestDocsPage(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/docs", "/docs/"} {
		r := f.do("GET", path, "", "").want(http.StatusOK)
		if ct := r.hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		page := string(r.body)
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "//cdn") {
			t.Errorf("%s refers to another origin:\n%s", path, page)
		}
		csp := r.hdr.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
		if len(refs) < 3 {
			t.Fatalf("%s: only %d asset references", path, len(refs))
		}
		for _, m := range refs {
			ref := m[1]
			if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
				t.Errorf("%s: reference %q is not a local path", path, ref)
				continue
			}
			a := f.do("GET", ref, "", "").want(http.StatusOK)
			if ct, want := a.hdr.Get("Content-Type"), mediaTypeOf(ref); !strings.HasPrefix(ct, want) {
				t.Errorf("%s: Content-Type %q, want %s", ref, ct, want)
			}
		}
	}
	js := string(f.do("GET", "/docs/docs.js", "", "").want(http.StatusOK).body)
	for _, want := range []string{`url: "/openapi.json"`, "persistAuthorization: true", "validatorUrl: null"} {
		if !strings.Contains(js, want) {
			t.Errorf("docs.js lacks %s", want)
		}
	}
	if strings.Contains(js, "http://") || strings.Contains(js, "https://") {
		t.Error("docs.js refers to another origin")
	}
	// Every asset the document lists is embedded and served; the licence
	// is served next to the code it covers.
	doc := mustOpenAPI(t)
	assets := doc.Paths.Value("/docs/{asset}").Get.Parameters.GetByInAndName("path", "asset").Schema.Value.Enum
	for _, a := range assets {
		r := f.do("GET", "/docs/"+a.(string), "", "").want(http.StatusOK)
		if len(r.body) == 0 {
			t.Errorf("/docs/%s is empty", a)
		}
	}
	if lic := f.do("GET", "/docs/LICENSE", "", "").body; !strings.Contains(string(lic), "Apache License") {
		t.Error("/docs/LICENSE is not Swagger UI's licence")
	}
	f.do("GET", "/docs/nope.js", "", "").problem(http.StatusNotFound)
	f.do("GET", "/docs/README.md", "", "").problem(http.StatusNotFound)
}

func mediaTypeOf(path string) string {
	switch {
	case strings.HasSuffix(path, ".js"):
		return "text/javascript"
	case strings.HasSuffix(path, ".css"):
		return "text/css"
	case strings.HasSuffix(path, ".png"):
		return "image/png"
	case strings.HasSuffix(path, ".json"):
		return "application/json"
	case strings.HasSuffix(path, ".yaml"):
		return "application/yaml"
	}
	return "text/plain"
}
