package httpapi

// The API's own description: the OpenAPI document (openapi.yaml, the
// source of truth that every HTTP test validates against) at
// /openapi.yaml and /openapi.json, and interactive docs (Swagger UI,
// embedded from swaggerui/, so that the page loads nothing from
// elsewhere) at /docs.

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"net/http"
	"path"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
)

// OpenAPIYAML is the OpenAPI 3.0 document of every route this adapter
// serves, as written (YAML).
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

//go:embed swaggerui
var swaggerUI embed.FS

// openAPIJSON is OpenAPIYAML converted to JSON, once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := LoadOpenAPI()
	if err != nil {
		return nil, err
	}
	b, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("openapi: encode as JSON: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + 1)
	buf.Write(b)
	buf.WriteByte('\n')
	return buf.Bytes(), nil
})

// LoadOpenAPI parses the embedded OpenAPI document (a fresh copy each
// call) and checks that it is a valid OpenAPI document.
func LoadOpenAPI() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi: parse openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// docsPage is /docs: Swagger UI on /openapi.json, every asset served from
// /docs/ (the Content-Security-Policy below forbids anything else).
const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>activityd API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>The interactive docs need JavaScript; the document itself is at <a href="/openapi.yaml">/openapi.yaml</a> and <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
`

// docsCSP keeps the docs page to this origin: scripts and styles from
// /docs/, requests ("Try it out") to this API. Swagger UI sets inline
// styles and shows inline (data:) images.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsAssets are the files under /docs/, with their media types.
var docsAssets = map[string]string{
	"swagger-ui-bundle.js":             "text/javascript; charset=utf-8",
	"swagger-ui.css":                   "text/css; charset=utf-8",
	"docs.js":                          "text/javascript; charset=utf-8",
	"favicon-32x32.png":                "image/png",
	"favicon-16x16.png":                "image/png",
	"LICENSE":                          "text/plain; charset=utf-8",
	"NOTICE":                           "text/plain; charset=utf-8",
	"swagger-ui-bundle.js.LICENSE.txt": "text/plain; charset=utf-8",
}

// docsRoutes mounts the OpenAPI document and the interactive docs. They
// need no credentials.
// It panics when the embedded document does not load: a build defect,
// better found at start than per request.
func (s *Server) docsRoutes(m chi.Router) {
	if _, err := openAPIJSON(); err != nil {
		panic(err)
	}
	m.Get("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		writeRaw(w, http.StatusOK, "application/yaml", OpenAPIYAML)
	})
	m.Get("/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		b, err := openAPIJSON()
		if err != nil { // cannot happen: NewServer checked it
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		writeRaw(w, http.StatusOK, "application/json", b)
	})
	page := func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		writeRaw(w, http.StatusOK, "text/html; charset=utf-8", []byte(docsPage))
	}
	m.Get("/docs", page)
	m.Get("/docs/", page)
	m.Get("/docs/{asset}", func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "asset")
		ct, ok := docsAssets[name]
		if !ok {
			s.notFound(w, r)
			return
		}
		b, err := swaggerUI.ReadFile(path.Join("swaggerui", name))
		if err != nil { // cannot happen: every asset is embedded (see the tests)
			s.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		writeRaw(w, http.StatusOK, ct, b)
	})
}
