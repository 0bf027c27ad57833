package main

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/domain"
)

// Settings for the predecessors' clients: browser pages on another origin
// (CORS) and the event-tracking clients that sent no credential. Both are
// off unless configured; README "Configuration" and docs/compat.md.

// maxCORSMaxAgeHours bounds HTTP_CORS_MAX_AGE_HOURS_CACHE (a year; browsers
// cap a preflight's lifetime far lower anyway).
const maxCORSMaxAgeHours = 24 * 365

// splitList splits a comma- or space-separated list, dropping empty items.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// loadCORS reads CORS_ALLOWED_ORIGINS, CORS_ALLOWED_METHODS,
// CORS_ALLOWED_HEADERS, CORS_ALLOW_CREDENTIALS and CORS_MAX_AGE into c,
// also from the event-tracking service's HTTP_CORS_ALLOWED_ORIGINS,
// HTTP_CORS_ALLOWED_METHODS, HTTP_CORS_ALLOWED_HEADERS and
// HTTP_CORS_MAX_AGE_HOURS_CACHE (whole hours) when the CORS_* name is
// unset.
func loadCORS(e *env, c *config) {
	var p httpapi.CORS
	origins, originsVar := e.first("CORS_ALLOWED_ORIGINS", "HTTP_CORS_ALLOWED_ORIGINS")
	p.AllowedOrigins = splitList(origins)
	if err := (httpapi.CORS{AllowedOrigins: p.AllowedOrigins}).Validate(); err != nil {
		e.fail(originsVar, origins, err.Error())
	}
	// The other settings, each with the variable that set it ("" unset).
	var set []string
	methods, methodsVar := e.first("CORS_ALLOWED_METHODS", "HTTP_CORS_ALLOWED_METHODS")
	if methods != "" {
		set = append(set, methodsVar)
		for _, m := range splitList(methods) {
			p.AllowedMethods = append(p.AllowedMethods, strings.ToUpper(m))
		}
		if err := (httpapi.CORS{AllowedMethods: p.AllowedMethods}).Validate(); err != nil {
			e.fail(methodsVar, methods, err.Error())
		}
	}
	headers, headersVar := e.first("CORS_ALLOWED_HEADERS", "HTTP_CORS_ALLOWED_HEADERS")
	if headers != "" {
		set = append(set, headersVar)
		p.AllowedHeaders = splitList(headers)
		if err := (httpapi.CORS{AllowedHeaders: p.AllowedHeaders}).Validate(); err != nil {
			e.fail(headersVar, headers, err.Error())
		}
	}
	if v, _ := e.first("CORS_ALLOW_CREDENTIALS"); v != "" {
		p.AllowCredentials = e.oneOf("false", []string{"true", "false"}, "CORS_ALLOW_CREDENTIALS") == "true"
		if p.AllowCredentials {
			set = append(set, "CORS_ALLOW_CREDENTIALS")
		}
		if err := (httpapi.CORS{AllowedOrigins: p.AllowedOrigins, AllowCredentials: p.AllowCredentials}).Validate(); err != nil {
			e.fail("CORS_ALLOW_CREDENTIALS", v, err.Error()+" ("+originsVar+"="+origins+")")
		}
	}
	switch v, name := e.first("CORS_MAX_AGE", "HTTP_CORS_MAX_AGE_HOURS_CACHE"); {
	case v == "":
	case name == "CORS_MAX_AGE":
		set = append(set, name)
		p.MaxAge = e.duration(0, name)
		if p.MaxAge%time.Second != 0 {
			e.fail(name, v, "must be a whole number of seconds, such as 600s, 10m or 2h")
		}
	default:
		set = append(set, name)
		p.MaxAge = time.Duration(e.integer(0, 0, maxCORSMaxAgeHours, name)) * time.Hour
	}
	if len(p.AllowedOrigins) == 0 && len(set) > 0 {
		v, _ := e.first(set[0])
		e.fail(set[0], v, "has no effect without CORS_ALLOWED_ORIGINS (or HTTP_CORS_ALLOWED_ORIGINS): "+
			"no origin is allowed, so no page on another origin may call the API; set the origins too, or unset it")
	}
	c.CORS = p
}

// loadAnonymousTracking reads EVENT_TRACKING_ANONYMOUS_SCOPES and
// EVENT_TRACKING_ANONYMOUS_NETWORKS into c: which requests without a
// credential the event-tracking routes serve (none by default).
func loadAnonymousTracking(e *env, c *config) {
	const scopesVar, networksVar = "EVENT_TRACKING_ANONYMOUS_SCOPES", "EVENT_TRACKING_ANONYMOUS_NETWORKS"
	var a httpapi.Anonymous
	scopes, _ := e.first(scopesVar)
	if scopes != "" {
		sc, err := domain.ParseScopes(scopes)
		switch {
		case err != nil:
			e.fail(scopesVar, scopes, err.Error())
		case slices.Contains(sc, domain.ScopeAdmin):
			e.fail(scopesVar, scopes, "admin is never given to requests without a credential; use events:read, events:write or both")
		case len(sc) == 0:
			e.fail(scopesVar, scopes, "names no scope; use events:read, events:write or both, or unset it")
		default:
			a.Scopes = sc
		}
	}
	networks, _ := e.first(networksVar)
	if networks != "" {
		ps, err := parseTrustedProxies(networks)
		if err != nil {
			e.fail(networksVar, networks, err.Error())
		}
		a.Networks = ps
	}
	switch {
	case scopes != "" && networks == "":
		e.fail(networksVar, "", "is required with "+scopesVar+": the CIDR ranges (such as 10.0.0.0/8) that requests without a credential may come from")
	case scopes == "" && networks != "":
		e.fail(networksVar, networks, "has no effect without "+scopesVar+" (events:read, events:write or both)")
	case scopes != "" && c.AuthMode == "none":
		e.fail(scopesVar, scopes, "has no effect with AUTH_MODE=none, where every request acts as an admin")
	}
	if e.err == nil {
		if err := a.Validate(); err != nil { // what the checks above missed, if anything
			e.fail(scopesVar, scopes, err.Error())
		}
	}
	c.AnonymousTracking = a
}

// describeAnonymous says the setting in a log line's terms.
func describeAnonymous(a httpapi.Anonymous) (scopes, networks string) {
	s := make([]string, len(a.Scopes))
	for i, sc := range a.Scopes {
		s[i] = string(sc)
	}
	n := make([]string, len(a.Networks))
	for i, p := range a.Networks {
		n[i] = p.String()
	}
	return strings.Join(s, ","), strings.Join(n, ",")
}

// logClientSettings says at start which of these settings are on: the
// migration setting with a warning, as it lets requests through without
// a credential.
func logClientSettings(cfg config, log *slog.Logger) {
	if p := cfg.CORS; p.Enabled() {
		log.Info("CORS: pages on these origins may call the API", "origins", strings.Join(p.AllowedOrigins, ","),
			"credentials", p.AllowCredentials, "max_age", p.MaxAge)
	}
	if a := cfg.AnonymousTracking; len(a.Scopes) > 0 {
		scopes, networks := describeAnonymous(a)
		log.Warn("EVENT_TRACKING_ANONYMOUS_SCOPES: POST /api/event and GET /api/events serve requests without a credential "+
			"from these networks (a migration setting: give the clients tokens, then unset it)", "scopes", scopes, "networks", networks)
	}
}
