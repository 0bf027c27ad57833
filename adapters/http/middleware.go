package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/domain"
)

// statusRecorder remembers what a handler wrote, for the access log and
// for the panic recoverer (which may only answer if nothing was written).
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe is the outermost middleware: it sets headers every response
// carries, recovers from panics with a 500 problem, and writes one access
// log line per request (method, route pattern, status, duration, size,
// trace and span ids; never bodies, query strings or credentials). It also
// starts the request's server span (continuing an incoming traceparent)
// and records the request metrics (telemetry.go).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, span := s.tel.start(r)
		r = r.WithContext(ctx)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
					span.End()
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic serving request",
					"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wroteHeader {
					s.writeProblem(rec, r, newProblem(http.StatusInternalServerError, slugInternal,
						"an internal error occurred; it has been logged"), http.StatusInternalServerError)
				}
			}
			route := routeUnmatched
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				if p := rctx.RoutePattern(); p != "" {
					route = p
				}
			}
			if route == routeUnmatched && s.cors != nil && isPreflight(r) {
				route = routePreflight // answered by the CORS middleware, before routing
			}
			status := rec.status
			if !rec.wroteHeader {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.tel.finish(ctx, span, r.Method, route, status, elapsed)
			level := slog.LevelInfo
			switch {
			case status >= 500:
				level = slog.LevelWarn
			case status < 400 && (route == "/healthz" || route == "/readyz"):
				level = slog.LevelDebug // probes every few seconds would drown the log
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", elapsed),
				slog.Int64("bytes", rec.bytes),
				// The client's address: who to block after failed
				// authentications (behind a trusted proxy, the one it
				// forwarded for; see clientaddr.go).
				slog.String("client", s.clientAddr(r)),
			}
			if sc := span.SpanContext(); sc.IsValid() {
				attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
			}
			s.log.LogAttrs(ctx, level, "http request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

type principalKey struct{}

// principalFrom returns the principal authenticate stored in ctx.
func principalFrom(ctx context.Context) domain.Principal {
	p, _ := ctx.Value(principalKey{}).(domain.Principal)
	return p
}

// authenticate resolves the request's credentials to a principal, or
// answers 401. With authentication disabled every request is anonymous().
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answers behind credentials are one principal's: no shared cache
		// (a proxy, a CDN, the browser's disk) may keep them.
		w.Header().Set("Cache-Control", "no-store")
		p, err := s.admit(w, r) // principal, under the abuse limits (limits.go)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// credentialHint says how to send a credential, in the words of the
// README and the OpenAPI document: an API token as `Token`, a JWT as
// `Bearer`. Bearer with an API token is accepted too (clients of
// OAuth-style APIs send every credential so), but one wording is taught.
const credentialHint = "send an API token as Authorization: Token <token> (Bearer <token> is accepted too), or a JWT as Authorization: Bearer <jwt>"

func unauthenticated(why string) error {
	return fmt.Errorf("%w: %s", domain.ErrUnauthenticated, why)
}

func (s *Server) principal(r *http.Request) (domain.Principal, error) {
	if s.noAuth {
		return anonymous(), nil
	}
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		if p, ok := s.anonymousPrincipal(r); ok { // the migration setting (anonymous.go)
			return p, nil
		}
		return domain.Principal{}, unauthenticated("missing credentials: " + credentialHint)
	case 1:
	default:
		return domain.Principal{}, unauthenticated("send exactly one Authorization header")
	}
	scheme, secret, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	secret = strings.TrimLeft(secret, " ")
	if !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "Token") {
		return domain.Principal{}, unauthenticated("unsupported authorization scheme: " + credentialHint)
	}
	if secret == "" || strings.ContainsAny(secret, " \t") {
		return domain.Principal{}, unauthenticated("malformed credentials: expected " + scheme + " <token>")
	}
	p, err := s.auth.Authenticate(r.Context(), secret)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, domain.ErrUnauthenticated), errors.Is(err, domain.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return domain.Principal{}, err
	case errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrInvalid), errors.Is(err, domain.ErrForbidden):
		// An authenticator that says "no such credential" in other words.
		return domain.Principal{}, unauthenticated("invalid credentials")
	default:
		return domain.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
}

// shed serves at most cap(s.inFlight) requests at once and answers any
// more 503 with Retry-After straight away: under a burst the server keeps
// its memory and its latency for the requests it took, and a client (or a
// load balancer) retries elsewhere or later. Health probes are never shed.
func (s *Server) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The feed's readers wait rather than work: they have their own
		// bound (Config.MaxFollowers, feed.go).
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/v1/changes" {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
			next.ServeHTTP(w, r)
		default:
			p := newProblem(http.StatusServiceUnavailable, slugOverloaded,
				"the server is at its limit of "+strconv.Itoa(cap(s.inFlight))+" requests in flight; retry later")
			s.writeProblem(w, r, p, p.Status)
		}
	})
}
