package httpapi_test

// Every request a test sends through fixture.serve or fixture.serveRaw, and
// the response it gets, is checked against the OpenAPI document
// (openapi.yaml) with kin-openapi's openapi3filter. A drift between the
// code and the document fails the test that exposed it.
//
// What is checked:
//   - the response: its status must be documented for the operation (an
//     undocumented status fails), its Content-Type must be one the
//     document lists, its body must match the schema, and the headers the
//     document marks required (Location, X-Cache, Retry-After,
//     WWW-Authenticate) must be there and match;
//   - the request: a request the document rejects must be answered 4xx.
//     Tests send invalid requests on purpose and the server rejects them;
//     what fails is an invalid request (by the document) that the server
//     accepted: the document is stricter than the code. A request the
//     document accepts may still be refused (the document cannot express
//     the action vocabulary, ownership or the workflow);
//   - a path or method no route serves: the answer must be a 404 or 405
//     problem document (405 with Allow);
//   - a route the router serves but the document does not list: any
//     success fails ("served but not documented"), an error must be a
//     problem document.
//
// The hostile-input and fuzz tests send malformed requests by the
// thousand: they set fixture.skipRequestCheck, which skips the request
// check only (their responses are still validated). The document is loaded
// and resolved once per process.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	httpapi "github.com/activityd/activityd/adapters/http"
)

// openAPIDoc is the document, loaded and validated once.
var openAPIDoc = sync.OnceValues(httpapi.LoadOpenAPI)

func mustOpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openAPIDoc()
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return doc
}

// authenticationFunc accepts a request whose Authorization header uses
// the scheme's syntax; whether the credential is valid is the server's
// business (a 401 is documented everywhere).
func authenticationFunc(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, secret, _ := strings.Cut(strings.TrimSpace(h), " ")
	var want string
	switch in.SecuritySchemeName {
	case "bearer":
		want = "Bearer"
	case "token":
		want = "Token"
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	if !strings.EqualFold(scheme, want) || strings.TrimSpace(secret) == "" {
		return fmt.Errorf("no %q credential", want)
	}
	return nil
}

// checkOpenAPI validates one exchange; reqBody is the request body as sent.
func (f *fixture) checkOpenAPI(req *http.Request, reqBody []byte, rec *httptest.ResponseRecorder) {
	f.t.Helper()
	if err := checkExchange(f.srv.Router(), req, reqBody, rec, !f.skipRequestCheck, f.authDisabled); err != nil {
		f.t.Errorf("OpenAPI: %s %.200s → %d: %v\nresponse body: %.500s", req.Method, req.URL.RequestURI(), rec.Code, err, rec.Body.Bytes())
	}
}

// checkExchange is the check itself; see the top of this file.
func checkExchange(mux chi.Routes, req *http.Request, reqBody []byte, rec *httptest.ResponseRecorder, checkRequest, authDisabled bool) error {
	doc, err := openAPIDoc()
	if err != nil {
		return err
	}
	ctx := context.Background()

	// Route as the server does: chi on the raw path; HEAD served by GET.
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	method := req.Method
	rctx := chi.NewRouteContext()
	pattern := mux.Find(rctx, method, path)
	if pattern == "" && method == http.MethodHead {
		method = http.MethodGet
		rctx = chi.NewRouteContext()
		pattern = mux.Find(rctx, method, path)
	}
	if pattern == "" {
		return checkUnrouted(doc, rec)
	}
	pattern = documentedPath(doc, pattern)
	item := doc.Paths.Value(pattern)
	var op *openapi3.Operation
	if item != nil {
		op = item.GetOperation(method)
	}
	if op == nil {
		if rec.Code < 400 {
			return fmt.Errorf("route %s %s is served but not in the OpenAPI document", method, pattern)
		}
		return checkProblem(doc, rec)
	}

	params := map[string]string{}
	for i, k := range rctx.URLParams.Keys {
		if k == "*" { // a chi wildcard: the document's one trailing parameter
			k = strings.TrimSuffix(pattern[strings.LastIndex(pattern, "{")+1:], "}")
		}
		params[k] = rctx.URLParams.Values[i]
	}
	route := &routers.Route{Spec: doc, Server: doc.Servers[0], Path: pattern, PathItem: item, Method: method, Operation: op}

	// The request, as the document sees it.
	vreq := req.Clone(ctx)
	vreq.Method = method
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err == nil &&
		strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") && op.RequestBody != nil &&
		op.RequestBody.Value.Content.Get(mt) == nil {
		// The document says any application/*+json is read as JSON.
		vreq.Header.Set("Content-Type", "application/json")
	}
	opts := &openapi3filter.Options{AuthenticationFunc: authenticationFunc, IncludeResponseStatus: true}
	if authDisabled {
		opts.AuthenticationFunc = openapi3filter.NoopAuthenticationFunc
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if checkRequest && rec.Code < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("the server accepted a request the document rejects: %w", err)
		}
	}

	ropts := *opts
	ropts.ExcludeResponseBody = req.Method == http.MethodHead
	in.Options = &ropts
	return openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                &ropts,
	})
}

// checkUnrouted checks the answer to a path or method no route serves.
func checkUnrouted(doc *openapi3.T, rec *httptest.ResponseRecorder) error {
	switch rec.Code {
	case http.StatusNotFound:
	case http.StatusMethodNotAllowed:
		if len(rec.Header().Values("Allow")) == 0 {
			return fmt.Errorf("405 without Allow")
		}
	default:
		return fmt.Errorf("no route serves this, yet the answer is %d (want 404 or 405)", rec.Code)
	}
	return checkProblem(doc, rec)
}

// checkProblem checks that an error answer is a problem document.
func checkProblem(doc *openapi3.T, rec *httptest.ResponseRecorder) error {
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if err := doc.Components.Schemas["Problem"].Value.VisitJSON(v); err != nil {
		return fmt.Errorf("body is not a Problem: %w", err)
	}
	return nil
}

// documentedPath is the document's path for a chi route pattern: the
// pattern itself, except that a chi wildcard ("/ui/*") stands for the
// document's path with one trailing parameter in its place ("/ui/{file}").
func documentedPath(doc *openapi3.T, pattern string) string {
	prefix, ok := strings.CutSuffix(pattern, "/*")
	if !ok {
		return pattern
	}
	for path := range doc.Paths.Map() {
		if rest, ok := strings.CutPrefix(path, prefix+"/{"); ok && strings.HasSuffix(rest, "}") && !strings.Contains(rest, "/") {
			return path
		}
	}
	return pattern
}
