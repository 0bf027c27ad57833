package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func TestLoadCORS(t *testing.T) {
	const app = "https://app.example.com"
	tests := []struct {
		name                      string
		env                       map[string]string
		origins, methods, headers []string
		credentials               bool
		maxAge                    time.Duration
	}{
		{name: "off by default", env: nil},
		{name: "origins", env: map[string]string{"CORS_ALLOWED_ORIGINS": app + ", http://localhost:3000"},
			origins: []string{app, "http://localhost:3000"}},
		{name: "every setting", env: map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_ALLOWED_METHODS": "get,POST",
			"CORS_ALLOWED_HEADERS": "Authorization Content-Type", "CORS_ALLOW_CREDENTIALS": "true", "CORS_MAX_AGE": "10m"},
			origins: []string{app}, methods: []string{"GET", "POST"}, headers: []string{"Authorization", "Content-Type"},
			credentials: true, maxAge: 10 * time.Minute},
		{name: "the event-tracking service's names", env: map[string]string{"HTTP_CORS_ALLOWED_ORIGINS": app,
			"HTTP_CORS_ALLOWED_METHODS": "GET,POST,OPTIONS", "HTTP_CORS_ALLOWED_HEADERS": "Content-Type",
			"HTTP_CORS_MAX_AGE_HOURS_CACHE": "12"},
			origins: []string{app}, methods: []string{"GET", "POST", "OPTIONS"}, headers: []string{"Content-Type"}, maxAge: 12 * time.Hour},
		{name: "CORS_* wins over HTTP_CORS_*", env: map[string]string{
			"CORS_ALLOWED_ORIGINS": app, "HTTP_CORS_ALLOWED_ORIGINS": "https://old.example.com",
			"CORS_ALLOWED_METHODS": "PATCH", "HTTP_CORS_ALLOWED_METHODS": "GET",
			"CORS_ALLOWED_HEADERS": "Idempotency-Key", "HTTP_CORS_ALLOWED_HEADERS": "X-Old",
			"CORS_MAX_AGE": "30s", "HTTP_CORS_MAX_AGE_HOURS_CACHE": "not even a number"},
			origins: []string{app}, methods: []string{"PATCH"}, headers: []string{"Idempotency-Key"}, maxAge: 30 * time.Second},
		{name: "any origin", env: map[string]string{"CORS_ALLOWED_ORIGINS": "*"}, origins: []string{"*"}},
		{name: "credentials false needs no origin", env: map[string]string{"CORS_ALLOW_CREDENTIALS": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			p := c.CORS
			if !slices.Equal(p.AllowedOrigins, tt.origins) || !slices.Equal(p.AllowedMethods, tt.methods) ||
				!slices.Equal(p.AllowedHeaders, tt.headers) || p.AllowCredentials != tt.credentials || p.MaxAge != tt.maxAge {
				t.Errorf("CORS %+v", p)
			}
			if p.Enabled() != (len(tt.origins) > 0) {
				t.Errorf("Enabled() = %v", p.Enabled())
			}
		})
	}
}

// TestLoadCORSRejects: each bad value stops start-up with a message that
// names the variable it came from, and why.
func TestLoadCORSRejects(t *testing.T) {
	const app = "https://app.example.com"
	tests := []struct {
		name string
		env  map[string]string
		want []string // the message holds each
	}{
		{"origin with a path", map[string]string{"CORS_ALLOWED_ORIGINS": app + "/"}, []string{"CORS_ALLOWED_ORIGINS=", "trailing slash"}},
		{"old name, not an origin", map[string]string{"HTTP_CORS_ALLOWED_ORIGINS": "example.com"}, []string{"HTTP_CORS_ALLOWED_ORIGINS=", "not an origin"}},
		{"wildcard with credentials", map[string]string{"CORS_ALLOWED_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"},
			[]string{"CORS_ALLOW_CREDENTIALS=", `"*" cannot be combined with credentials`}},
		{"wildcard among others with credentials", map[string]string{"HTTP_CORS_ALLOWED_ORIGINS": app + ",*", "CORS_ALLOW_CREDENTIALS": "true"},
			[]string{"CORS_ALLOW_CREDENTIALS=", "HTTP_CORS_ALLOWED_ORIGINS="}},
		{"credentials not a boolean", map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_ALLOW_CREDENTIALS": "yes"}, []string{"CORS_ALLOW_CREDENTIALS=", "true, false"}},
		{"method not a token", map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_ALLOWED_METHODS": "GET,PO(ST"}, []string{"CORS_ALLOWED_METHODS="}},
		{"old name, header not a token", map[string]string{"CORS_ALLOWED_ORIGINS": app, "HTTP_CORS_ALLOWED_HEADERS": "Content-Type,X:Y"}, []string{"HTTP_CORS_ALLOWED_HEADERS=", "not a header name"}},
		{"max age not a duration", map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_MAX_AGE": "12"}, []string{"CORS_MAX_AGE=", "duration"}},
		{"max age negative", map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_MAX_AGE": "-1h"}, []string{"CORS_MAX_AGE="}},
		{"max age fractional", map[string]string{"CORS_ALLOWED_ORIGINS": app, "CORS_MAX_AGE": "1500ms"}, []string{"CORS_MAX_AGE=", "whole number of seconds"}},
		{"old max age not hours", map[string]string{"CORS_ALLOWED_ORIGINS": app, "HTTP_CORS_MAX_AGE_HOURS_CACHE": "12h"}, []string{"HTTP_CORS_MAX_AGE_HOURS_CACHE=", "integer"}},
		{"old max age negative", map[string]string{"CORS_ALLOWED_ORIGINS": app, "HTTP_CORS_MAX_AGE_HOURS_CACHE": "-1"}, []string{"HTTP_CORS_MAX_AGE_HOURS_CACHE="}},
		{"methods without origins", map[string]string{"HTTP_CORS_ALLOWED_METHODS": "GET"}, []string{"HTTP_CORS_ALLOWED_METHODS=", "no effect without CORS_ALLOWED_ORIGINS"}},
		{"credentials without origins", map[string]string{"CORS_ALLOW_CREDENTIALS": "true"}, []string{"CORS_ALLOW_CREDENTIALS=", "no effect"}},
		{"max age without origins", map[string]string{"HTTP_CORS_MAX_AGE_HOURS_CACHE": "12"}, []string{"HTTP_CORS_MAX_AGE_HOURS_CACHE=", "no effect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tt.env))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadAnonymousTracking(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AnonymousTracking.Scopes) != 0 || len(c.AnonymousTracking.Networks) != 0 {
		t.Fatalf("on by default: %+v", c.AnonymousTracking)
	}
	c, err = loadConfig(envOf(map[string]string{
		"EVENT_TRACKING_ANONYMOUS_SCOPES":   "events:write, events:read",
		"EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8 192.0.2.7,2001:db8::/32",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := c.AnonymousTracking
	wantNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(a.Scopes, []domain.Scope{domain.ScopeWrite, domain.ScopeRead}) || !slices.Equal(a.Networks, wantNets) {
		t.Errorf("%+v", a)
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"admin", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:write,admin", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8"},
			[]string{"EVENT_TRACKING_ANONYMOUS_SCOPES=", "admin is never given"}},
		{"unknown scope", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:delete", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8"},
			[]string{"EVENT_TRACKING_ANONYMOUS_SCOPES=", "unknown scope"}},
		{"no scope named", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": ",", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8"},
			[]string{"EVENT_TRACKING_ANONYMOUS_SCOPES=", "names no scope"}},
		{"scopes without networks", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:write"},
			[]string{"EVENT_TRACKING_ANONYMOUS_NETWORKS=", "is required with EVENT_TRACKING_ANONYMOUS_SCOPES"}},
		{"networks without scopes", map[string]string{"EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/8"},
			[]string{"EVENT_TRACKING_ANONYMOUS_NETWORKS=", "no effect"}},
		{"bad network", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:read", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "10.0.0.0/33"},
			[]string{"EVENT_TRACKING_ANONYMOUS_NETWORKS=", "CIDR"}},
		{"with AUTH_MODE=none", map[string]string{"EVENT_TRACKING_ANONYMOUS_SCOPES": "events:read", "EVENT_TRACKING_ANONYMOUS_NETWORKS": "127.0.0.0/8", "AUTH_MODE": "none"},
			[]string{"EVENT_TRACKING_ANONYMOUS_SCOPES=", "AUTH_MODE=none"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tt.env))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
