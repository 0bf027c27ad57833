package httpapi

// Requests without a credential, on purpose only. The event-tracking
// predecessor's clients sent none; an operator migrating them may let
// such requests through (Config.Anonymous: EVENT_TRACKING_ANONYMOUS_SCOPES
// and EVENT_TRACKING_ANONYMOUS_NETWORKS) until every client has a token.
// The exception is as narrow as it can be:
//
//   - only the routes that allowAnonymous wraps: POST /api/event and
//     GET /api/events (with or without the trailing slash), never /v1 nor
//     the activity-logger routes;
//   - only a request with no Authorization header at all: a credential
//     that is wrong is a 401, as everywhere;
//   - only from a client address (clientaddr.go, behind TRUSTED_PROXIES)
//     in one of the networks; from elsewhere, a 401 as everywhere;
//   - only with the scopes named, events:read and/or events:write (never
//     admin), on one named user at a time (domain.Principal.AnyUser).
//
// Every such request is counted (activityd_http_anonymous_requests_total,
// by route) and logged with the client's address and user agent, so that
// the operator sees who still has to be given a token. It acts as the
// principal "anonymous:<client address>": its rate limit (RATE_LIMIT) is
// per address, and status history names the address.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/activityd/activityd/domain"
)

// Anonymous is the migration setting for clients without a credential.
// The zero Anonymous: every request needs one.
type Anonymous struct {
	// Scopes are what such a request may do: events:read, events:write or
	// both. None: the setting is off.
	Scopes []domain.Scope
	// Networks are the client addresses such a request must come from;
	// required with Scopes.
	Networks []netip.Prefix
}

// Validate reports what is wrong with a; nil for the zero Anonymous.
func (a Anonymous) Validate() error {
	if len(a.Scopes) == 0 {
		if len(a.Networks) > 0 {
			return errors.New("networks without scopes have no effect")
		}
		return nil
	}
	for _, sc := range a.Scopes {
		if sc != domain.ScopeRead && sc != domain.ScopeWrite {
			return fmt.Errorf("scope %q cannot be given to requests without a credential: only events:read and events:write can", sc)
		}
	}
	if len(a.Networks) == 0 {
		return errors.New("scopes need networks: name the client addresses (CIDR ranges) that may go without a credential")
	}
	for _, n := range a.Networks {
		if !n.IsValid() {
			return fmt.Errorf("network %v is not a CIDR range", n)
		}
	}
	return nil
}

// anonymousAccess is the Server's share of it; nil when off.
type anonymousAccess struct {
	scopes   []domain.Scope
	networks trustedProxies // the same matching as trusted proxies
	requests metric.Int64Counter
}

// newAnonymous returns the setting a asks for, nil when it is off. It
// panics when a is not valid: the composition root checks it first.
func newAnonymous(a Anonymous, tel *instrumentation) *anonymousAccess {
	if err := a.Validate(); err != nil {
		panic("httpapi: Config.Anonymous: " + err.Error())
	}
	if len(a.Scopes) == 0 {
		return nil
	}
	return &anonymousAccess{scopes: slices.Clone(a.Scopes), networks: trustedProxies(slices.Clone(a.Networks)), requests: tel.anonymous}
}

type anonymousRouteKey struct{}

// allowAnonymous marks the requests of the routes it wraps as ones that
// may go without a credential when the setting is on (see above).
func (s *Server) allowAnonymous(next http.Handler) http.Handler {
	if s.anon == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), anonymousRouteKey{}, true)))
	})
}

// maxLoggedUserAgent bounds the user agent a log line repeats.
const maxLoggedUserAgent = 256

// anonymousPrincipal is who r acts as when it carries no Authorization
// header; false when r may not go without one (see above). A request it
// admits is counted and logged.
func (s *Server) anonymousPrincipal(r *http.Request) (domain.Principal, bool) {
	a := s.anon
	if a == nil || r.Context().Value(anonymousRouteKey{}) == nil {
		return domain.Principal{}, false
	}
	ip, ok := s.clientIP(r)
	if !ok || !a.networks.contains(ip) {
		return domain.Principal{}, false
	}
	route := routeUnmatched
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePattern() != "" {
		route = rctx.RoutePattern()
	}
	a.requests.Add(context.WithoutCancel(r.Context()), 1, metric.WithAttributes(attribute.String("route", route)))
	ua := r.UserAgent()
	if len(ua) > maxLoggedUserAgent {
		ua = ua[:maxLoggedUserAgent] + "…"
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request without a credential served (EVENT_TRACKING_ANONYMOUS_SCOPES); give this client a token",
		slog.String("client", ip.String()), slog.String("method", r.Method), slog.String("route", route), slog.String("user_agent", ua))
	return domain.Principal{Name: "anonymous:" + ip.String(), Scopes: slices.Clone(a.scopes), AnyUser: true}, true
}
