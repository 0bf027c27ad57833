// Package httpapi is the driving HTTP adapter of activityd: the canonical
// /v1 JSON API (README: The API, and openapi.yaml; events in events.go,
// activity counts in counts.go), the two predecessor systems' surfaces
// (/api/event(s) and /api/logs, see compat.go and docs/compat.md) and the
// operational endpoints /healthz and /readyz, on a chi router.
//
// Every handler decodes client input strictly (on /v1, unknown fields,
// trailing data, wrong JSON types and unknown query parameters are 400
// naming the field; the predecessors' surfaces ignore unknown members and
// parameters, as their predecessors did), calls one use case of package
// app with the request's principal, and renders the outcome. Every error
// becomes an RFC 9457 application/problem+json document through one
// mapping function (Server.problemFor); no input produces a 500 or a stack
// trace.
package httpapi

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Authenticator turns a credential secret into a principal; *app.Tokens
// satisfies it. It returns an error matching domain.ErrUnauthenticated for
// a secret it does not accept.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (domain.Principal, error)
}

// Pinger reports whether a dependency is reachable (the store).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is what the HTTP adapter needs.
type Config struct {
	Events *app.Events
	// Counts serves /v1/activity-counts; nil: those routes are not served.
	Counts *app.Counts
	// Feed serves /v1/changes; nil: that route is not served.
	Feed *app.Feed
	// Webhooks serves /v1/webhooks; nil: those routes are not served.
	Webhooks *app.Webhooks
	// Evidence serves /v1/checkpoints, /v1/users/{id}/integrity,
	// /v1/events/{id}/proof and the checkpoint key; nil: not served.
	Evidence *app.Evidence
	// MaxFollowers bounds the /v1/changes requests open at once (long
	// polls and event streams), which do not count against MaxInFlight.
	// 0 → DefaultMaxFollowers.
	MaxFollowers int
	Auth         Authenticator
	Storage      Pinger // nil: /readyz does not check storage
	// Cache, when set, is reported by /readyz ("cache":"ok"|"unavailable")
	// without affecting readiness: reads bypass a failing cache.
	Cache        Pinger
	Logger       *slog.Logger // nil → discard
	MaxBodyBytes int64        // 0 → 1 MiB
	// MaxInFlight bounds the requests served at once (MAX_IN_FLIGHT); one
	// more is answered 503 with Retry-After at once, before any work, so
	// that a burst cannot grow memory without bound. /healthz and /readyz
	// are not counted. 0 → DefaultMaxInFlight.
	MaxInFlight int
	// BodyMemoryBudget (BODY_MEMORY_BUDGET) bounds the request body bytes
	// held at once, server-wide, by requests that read a body, until they
	// are answered (see bodyBudget): beyond it a request waits up to
	// BodyBudgetWait, then is answered 503 overloaded. 0 → DefaultBodyMemoryBudget; never below
	// MaxBodyBytes. BodyBudgetWait 0 → DefaultBodyBudgetWait.
	BodyMemoryBudget int64
	BodyBudgetWait   time.Duration
	// AuthDisabled (AUTH_MODE=none) makes every request act as the
	// principal {Name:"anonymous", Scopes:[admin]}. Local experiments only.
	AuthDisabled bool
	// TrustedProxies (TRUSTED_PROXIES) are the peers whose
	// X-Forwarded-For or Forwarded header names the client (see
	// clientaddr.go); none: the client is always the TCP peer.
	TrustedProxies []netip.Prefix
	// AuthFailures (AUTH_FAILURE_LIMIT, AUTH_FAILURE_BURST) limits failed
	// authentications per client address, per replica: beyond it the
	// address is answered 429 before its credentials are looked up. The
	// zero Limit: unlimited.
	AuthFailures ports.Limit
	// RateLimiter and RateLimit (RATE_LIMIT, RATE_LIMIT_BURST) limit the
	// requests of each principal: 429 beyond. nil or the zero Limit: no
	// limit.
	RateLimiter ports.Limiter
	RateLimit   ports.Limit
	// UI, when set, serves the web UI at GET / and its assets under
	// /ui/, without authentication (its API calls carry the token); see
	// package web. nil: not served.
	UI http.Handler

	// TracerProvider makes the per-request server spans (named "METHOD
	// /route/template"); nil: no spans. Propagator reads an incoming
	// traceparent; nil: the global one (otel.GetTextMapPropagator).
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// MeterProvider makes the request metrics (telemetry.go); nil: none.
	MeterProvider metric.MeterProvider
	// Metrics, when set, is served at GET /metrics without
	// authentication (the Prometheus exposition). nil: not mounted.
	Metrics http.Handler

	// CORS is the cross-origin policy (CORS_*, cors.go); the zero CORS
	// allows no origin.
	CORS CORS
	// Anonymous lets requests without any credential use the
	// event-tracking routes, as that predecessor's clients did
	// (EVENT_TRACKING_ANONYMOUS_*, anonymous.go); the zero value: never.
	Anonymous Anonymous
}

// DefaultMaxInFlight is Config.MaxInFlight's default.
const DefaultMaxInFlight = 256

// DefaultMaxFollowers is Config.MaxFollowers' default.
const DefaultMaxFollowers = 1024

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes
// is 0 (MAX_BODY_BYTES).
const DefaultMaxBodyBytes int64 = 1 << 20

// readyTimeout bounds the storage ping of /readyz: a probe must answer
// quickly, never hang.
const readyTimeout = time.Second

// anonymous is the principal every request acts as when authentication is
// disabled (a fresh value each time: the scopes slice is not shared).
func anonymous() domain.Principal {
	return domain.Principal{Name: "anonymous", Scopes: []domain.Scope{domain.ScopeAdmin}, Kind: domain.KindNone}
}

// Server is the HTTP API. It implements http.Handler.
type Server struct {
	events   *app.Events
	countUC  *app.Counts
	feed     *app.Feed
	hooks    *app.Webhooks
	evidence *app.Evidence
	// followers bounds the /v1/changes requests open at once.
	followers chan struct{}
	auth      Authenticator
	storage   Pinger
	cache     Pinger
	log       *slog.Logger
	maxBody   int64
	// inFlight holds a token per request being served (MaxInFlight).
	inFlight chan struct{}
	bodies   bodyBudget // BodyMemoryBudget
	noAuth   bool
	cors     func(http.Handler) http.Handler // nil: CORS off
	anon     *anonymousAccess                // nil: every request needs a credential
	ui       http.Handler
	metrics  http.Handler
	tel      *instrumentation
	limits   *abuseLimits
	mux      *chi.Mux
}

// NewServer builds the API. It panics when cfg.Events is nil, when
// cfg.Auth is nil while authentication is enabled, or when cfg.CORS or
// cfg.Anonymous is not valid: all programming errors of the composition
// root (which checks the configuration first), better found at start than
// per request.
func NewServer(cfg Config) *Server {
	if cfg.Events == nil {
		panic("httpapi: Config.Events is nil")
	}
	if cfg.Auth == nil && !cfg.AuthDisabled {
		panic("httpapi: Config.Auth is nil and AuthDisabled is false")
	}
	s := &Server{
		events:   cfg.Events,
		countUC:  cfg.Counts,
		feed:     cfg.Feed,
		hooks:    cfg.Webhooks,
		evidence: cfg.Evidence,
		auth:     cfg.Auth,
		storage:  cfg.Storage,
		cache:    cfg.Cache,
		log:      cfg.Logger,
		maxBody:  cfg.MaxBodyBytes,
		noAuth:   cfg.AuthDisabled,
		ui:       cfg.UI,
		metrics:  cfg.Metrics,
		tel:      newInstrumentation(cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator),
		limits:   newAbuseLimits(cfg),
		cors:     newCORS(cfg.CORS),
		mux:      chi.NewRouter(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	s.inFlight = make(chan struct{}, cmp.Or(max(cfg.MaxInFlight, 0), DefaultMaxInFlight))
	s.followers = make(chan struct{}, cmp.Or(max(cfg.MaxFollowers, 0), DefaultMaxFollowers))
	s.bodies = newBodyBudget(cfg.BodyMemoryBudget, s.maxBody, cfg.BodyBudgetWait)
	s.anon = newAnonymous(cfg.Anonymous, s.tel)
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	countRequest(r) // framing.go: which request of its connection this is
	s.mux.ServeHTTP(w, r)
}

// Router exposes the chi router so that further surfaces (the
// predecessors' routes, /metrics, docs) can be mounted on it. Middleware
// can no longer be added with Use (chi forbids it after the first route);
// use Group or With.
func (s *Server) Router() chi.Router { return s.mux }

func (s *Server) routes() {
	m := s.mux
	// CORS comes before shedding, so that a page can read a 503
	// overloaded, and before routing and authentication, which a
	// preflight never reaches (cors.go).
	m.Use(s.observe, s.refuseAmbiguousFraming)
	if s.cors != nil {
		m.Use(s.cors)
	}
	m.Use(s.shed, middleware.GetHead)
	m.NotFound(s.notFound)
	m.MethodNotAllowed(s.methodNotAllowed)

	if s.evidence != nil {
		m.Get(CheckpointKeyPath, s.checkpointKey)
	}
	m.Get("/healthz", s.healthz)
	m.Get("/readyz", s.readyz)
	if s.metrics != nil {
		m.Get("/metrics", s.metrics.ServeHTTP)
	}
	if s.ui != nil {
		m.Get("/", s.ui.ServeHTTP)
		m.Get("/ui/*", s.ui.ServeHTTP)
		m.Get("/favicon.ico", s.ui.ServeHTTP)
	}

	m.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/v1/me", s.me)
		r.Get("/v1/actions", s.actions)
		r.Post("/v1/events", s.createEvent)
		r.Post("/v1/events/batch", s.createBatch)
		r.Get("/v1/events", s.listEvents)
		r.Get("/v1/events/{id}", s.getEvent)
		r.Patch("/v1/events/{id}", s.patchEvent)
		r.Get("/v1/users/{user_id}/events", s.listEvents)
		r.Get("/v1/events/export", s.exportEvents)
		r.Get("/v1/users/{user_id}/events/export", s.exportEvents)
		r.Post("/v1/users/{user_id}/erasure", s.eraseUser)
		if s.evidence != nil {
			r.Get("/v1/checkpoints", s.listCheckpoints)
			r.Post("/v1/checkpoints", s.signCheckpoint)
			r.Get("/v1/users/{user_id}/integrity", s.userIntegrity)
			r.Get("/v1/events/{id}/proof", s.eventProof)
		}
		if s.countUC != nil {
			r.Get("/v1/activity-counts", s.listCounts)
			r.Get("/v1/users/{user_id}/activity-counts", s.listCounts)
			r.Post("/v1/activity-counts/runs", s.runCounts)
		}
		if s.feed != nil {
			r.Get("/v1/changes", s.changes)
		}
		if s.hooks != nil {
			r.Post("/v1/webhooks", s.createWebhook)
			r.Get("/v1/webhooks", s.listWebhooks)
			r.Get("/v1/webhooks/{id}", s.getWebhook)
			r.Patch("/v1/webhooks/{id}", s.patchWebhook)
			r.Delete("/v1/webhooks/{id}", s.deleteWebhook)
			r.Post("/v1/webhooks/{id}/rotate", s.rotateWebhook)
			r.Post("/v1/webhooks/{id}/replay", s.replayWebhook)
			r.Get("/v1/webhooks/{id}/deliveries", s.webhookDeliveries)
		}
	})

	s.compatRoutes(m) // the predecessors' surfaces, over the same use cases (compat.go)
	s.docsRoutes(m)   // /openapi.json, /openapi.yaml and /docs (docs.go)
}

// healthz reports that the process is alive; it checks nothing else.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether this replica can serve: storage must answer a
// ping within readyTimeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	body := map[string]string{"status": "ready", "storage": "unchecked"}
	if s.cache != nil {
		body["cache"] = "ok"
		if err := ping(r.Context(), s.cache); err != nil {
			s.log.WarnContext(r.Context(), "cache unreachable; reads bypass it", "err", err)
			body["cache"] = "unavailable"
		}
	}
	if s.storage != nil {
		body["storage"] = "ok"
		if err := ping(r.Context(), s.storage); err != nil {
			s.log.WarnContext(r.Context(), "readiness check failed", "check", "storage", "err", err)
			p := newProblem(http.StatusServiceUnavailable, slugUnavailable, "not ready: storage is unreachable")
			s.writeProblem(w, r, readyProblem{problem: p, Storage: "unavailable", Cache: body["cache"]}, p.Status)
			return
		}
	}
	s.writeJSON(w, r, http.StatusOK, body)
}

// readyProblem is the 503 of /readyz: a problem document that also names
// the failed check, in the same members as the 200 body.
type readyProblem struct {
	problem
	Storage string `json:"storage"`
	Cache   string `json:"cache,omitempty"`
}

// ping asks p whether it is reachable, giving up after readyTimeout even
// if the Pinger ignores its context.
func ping(ctx context.Context, p Pinger) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Ping(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notFound answers a path no route serves.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, &httpError{status: http.StatusNotFound, slug: slugNotFound, detail: "there is no resource at this path"})
}

// knownMethods are the methods whose routes an Allow header can list.
var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// methodNotAllowed answers a path that exists with a method it does not
// serve, listing the ones it does in Allow. chi calls it also for methods
// it does not know at all; for a path no method serves that is a 404.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range knownMethods {
		if s.mux.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		s.notFound(w, r)
		return
	}
	if !slices.Contains(allowed, http.MethodHead) && slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead) // middleware.GetHead serves HEAD for every GET route
	}
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	s.fail(w, r, &httpError{status: http.StatusMethodNotAllowed, slug: slugMethodNotAllowed,
		detail: "this path does not serve " + r.Method + "; see the Allow header"})
}
