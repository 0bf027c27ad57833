package httpapi

// Cross-origin requests (CORS, the Fetch standard): a browser page served
// from another origin may call the API only when the origin is allowed
// (Config.CORS; CORS_ALLOWED_ORIGINS and friends, README "Configuration").
// Nothing is allowed by default: with no origin configured no
// Access-Control-* header is ever sent and a browser blocks every
// cross-origin call.
//
// The policy is github.com/rs/cors, installed as a middleware of every
// route, ahead of shedding, authentication and routing: a preflight
// (OPTIONS with Access-Control-Request-Method) is answered 204 there,
// without credentials (a browser never sends them on a preflight) and
// without reaching the router (no route serves OPTIONS, which would be a
// 405). An actual request from an allowed origin gets its CORS headers
// before the handler runs, so that an error (401, 429, 503 overloaded) is
// readable by the page too.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/cors"
)

// CORS is the cross-origin policy. The zero CORS allows no origin.
type CORS struct {
	// AllowedOrigins are the origins whose pages may call the API
	// ("https://app.example.com", scheme://host[:port] without a path), or
	// "*" for any page. None: CORS is off.
	AllowedOrigins []string
	// AllowedMethods are the methods a page may use; none:
	// DefaultCORSMethods.
	AllowedMethods []string
	// AllowedHeaders are the request headers a page may send beyond the
	// CORS-safelisted ones; none: DefaultCORSHeaders.
	AllowedHeaders []string
	// AllowCredentials lets a page send cookies and TLS client
	// certificates (fetch's credentials: "include"). activityd reads
	// neither: an Authorization header needs only AllowedHeaders. Never
	// together with the origin "*".
	AllowCredentials bool
	// MaxAge is how long a browser may reuse a preflight's answer, in
	// whole seconds; 0: no Access-Control-Max-Age (browsers then keep it
	// 5 s). Browsers cap it (Chromium at 2 h, Firefox at 24 h).
	MaxAge time.Duration
}

// DefaultCORSMethods are the methods the API serves (CORS.AllowedMethods
// when none is configured).
var DefaultCORSMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch}

// DefaultCORSHeaders are the request headers the API reads that are not
// CORS-safelisted (CORS.AllowedHeaders when none is configured): the
// credential, a JSON body's type, the idempotency key and W3C trace
// context.
var DefaultCORSHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Traceparent", "Tracestate"}

// corsExposedHeaders are the response headers a page may read beyond the
// CORS-safelisted ones (Content-Type, Cache-Control, Content-Length...):
// every other header the API sets.
var corsExposedHeaders = []string{
	"Location",            // 201 on /v1
	"Retry-After",         // 429, 503
	"RateLimit-Limit",     // RATE_LIMIT
	"RateLimit-Remaining", // RATE_LIMIT
	"RateLimit-Reset",     // RATE_LIMIT
	"WWW-Authenticate",    // 401
	"X-Cache",             // listings
	"Allow",               // 405
	"Accept-Patch",        // 415 on PATCH
	"Accept-Post",         // 415 on POST
}

// Enabled reports whether c allows any origin.
func (c CORS) Enabled() bool { return len(c.AllowedOrigins) > 0 }

// Validate reports the first setting of c that is not valid; nil for the
// zero CORS.
func (c CORS) Validate() error {
	for _, o := range c.AllowedOrigins {
		if err := CheckCORSOrigin(o); err != nil {
			return fmt.Errorf("allowed origins: %w", err)
		}
		if o == "*" && c.AllowCredentials {
			return ErrCORSWildcardCredentials
		}
	}
	for _, m := range c.AllowedMethods {
		if !isToken(m) || m != strings.ToUpper(m) {
			return fmt.Errorf("allowed methods: %q is not a method such as GET or PATCH (upper case)", m)
		}
	}
	for _, h := range c.AllowedHeaders {
		if h != "*" && !isToken(h) {
			return fmt.Errorf("allowed headers: %q is not a header name", h)
		}
	}
	if c.MaxAge < 0 || c.MaxAge%time.Second != 0 {
		return fmt.Errorf("max age %v: must be a non-negative whole number of seconds", c.MaxAge)
	}
	return nil
}

// ErrCORSWildcardCredentials refuses the origin "*" with credentials: it
// would let every site on the web act with a visitor's cookies.
var ErrCORSWildcardCredentials = errors.New(`the origin "*" cannot be combined with credentials: list the origins that may send them`)

// CheckCORSOrigin checks one allowed origin: "*", or an http(s) origin as
// a browser sends it in Origin (scheme://host[:port], no path, no
// trailing slash).
func CheckCORSOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an origin such as https://app.example.com or http://localhost:3000", o)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, "?#*"):
		return fmt.Errorf("%q is not an origin: give scheme://host[:port] alone, without a path or a trailing slash (%s://%s)", o, u.Scheme, u.Host)
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2): the
// syntax of a method and of a header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// newCORS builds the middleware of c; nil when c allows no origin (rs/cors
// itself would allow every origin when given none). It panics on a policy
// Validate refuses: the composition root checks it first.
func newCORS(c CORS) func(http.Handler) http.Handler {
	if !c.Enabled() {
		return nil
	}
	if err := c.Validate(); err != nil {
		panic("httpapi: Config.CORS: " + err.Error())
	}
	o := cors.Options{
		AllowedOrigins:   c.AllowedOrigins,
		AllowedMethods:   c.AllowedMethods,
		AllowedHeaders:   c.AllowedHeaders,
		ExposedHeaders:   corsExposedHeaders,
		AllowCredentials: c.AllowCredentials,
		MaxAge:           int(c.MaxAge / time.Second),
	}
	if len(o.AllowedMethods) == 0 {
		o.AllowedMethods = DefaultCORSMethods
	}
	if len(o.AllowedHeaders) == 0 {
		o.AllowedHeaders = DefaultCORSHeaders
	}
	return cors.New(o).Handler
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// routePreflight is the route label of a preflight the CORS middleware
// answered (it never reaches the router).
const routePreflight = "cors-preflight"
