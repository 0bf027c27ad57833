package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/adapters/auth"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// meDoc is GET /v1/me's answer, every member required.
type meDoc struct {
	Name      *string   `json:"name"`
	UserID    *int64    `json:"user_id"`
	Scopes    *[]string `json:"scopes"`
	Admin     *bool     `json:"admin"`
	AnyUser   *bool     `json:"any_user"`
	ExpiresAt *string   `json:"expires_at"`
	Kind      *string   `json:"kind"`
}

func (r *response) me() meDoc {
	r.t.Helper()
	r.want(http.StatusOK)
	var m meDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		r.t.Fatalf("%s: not a /v1/me document: %v", r, err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(r.body, &raw)
	for _, k := range []string{"name", "user_id", "scopes", "admin", "any_user", "expires_at", "kind"} {
		if _, ok := raw[k]; !ok {
			r.t.Fatalf("%s: member %q missing", r, k)
		}
	}
	return m
}

const jwtTestSecret = "0123456789abcdef0123456789abcdef" // 32 bytes: HS256

func signClaims(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtTestSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMe(t *testing.T) {
	var j *auth.JWT
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		var err error
		if j, err = auth.NewJWT(context.Background(), auth.JWTConfig{Secret: []byte(jwtTestSecret)}); err != nil {
			t.Fatal(err)
		}
		c.Auth = auth.Chain(j, c.Auth)
	}))
	t.Cleanup(j.Close)
	expiring, tok := f.tokenWith(app.TokenSpec{Name: "ci", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead}, TTL: 48 * time.Hour})
	noScope := f.token(9, domain.ScopeWrite) // no events:read: /v1/me needs no scope
	exp := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	jwt42 := signClaims(t, jwt.MapClaims{"sub": "42", "scope": "events:read events:write", "exp": exp.Unix()})
	jwtAdmin := signClaims(t, jwt.MapClaims{"sub": "ops-robot", "scope": "admin", "exp": exp.Unix()})

	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	tests := []struct {
		name, auth string
		want       meDoc
	}{
		{"a user's token, expiring", "Token " + expiring, meDoc{Name: str("token:" + tok.ID), UserID: i64(7),
			ExpiresAt: str(domain.FormatTime(tok.ExpiresAt)), Kind: str("token")}},
		{"the same as Bearer", "Bearer " + expiring, meDoc{Name: str("token:" + tok.ID), UserID: i64(7),
			ExpiresAt: str(domain.FormatTime(tok.ExpiresAt)), Kind: str("token")}},
		{"an admin token, never expiring", "Token " + f.admin, meDoc{Kind: str("token")}},
		{"a token without events:read", "Token " + noScope, meDoc{UserID: i64(9), Kind: str("token")}},
		{"a JWT", "Bearer " + jwt42, meDoc{Name: str("jwt:42"), UserID: i64(42), ExpiresAt: str(domain.FormatTime(exp)), Kind: str("jwt")}},
		{"an admin JWT", "Bearer " + jwtAdmin, meDoc{Name: str("jwt:ops-robot"), ExpiresAt: str(domain.FormatTime(exp)), Kind: str("jwt")}},
	}
	wantScopes := map[string]string{
		"a user's token, expiring": "events:read", "the same as Bearer": "events:read", "an admin token, never expiring": "admin",
		"a token without events:read": "events:write", "a JWT": "events:read events:write", "an admin JWT": "admin",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			m := f.serve(request{method: "GET", path: "/v1/me", header: map[string]string{"Authorization": tt.auth}}).me()
			if tt.want.Name != nil && *m.Name != *tt.want.Name {
				t.Errorf("name %q, want %q", *m.Name, *tt.want.Name)
			}
			if !strings.HasPrefix(*m.Name, *tt.want.Kind+":") {
				t.Errorf("name %q does not say its kind %q", *m.Name, *tt.want.Kind)
			}
			if (m.UserID == nil) != (tt.want.UserID == nil) || (m.UserID != nil && *m.UserID != *tt.want.UserID) {
				t.Errorf("user_id %v, want %v", m.UserID, tt.want.UserID)
			}
			if (m.ExpiresAt == nil) != (tt.want.ExpiresAt == nil) || (m.ExpiresAt != nil && *m.ExpiresAt != *tt.want.ExpiresAt) {
				t.Errorf("expires_at %v, want %v", m.ExpiresAt, tt.want.ExpiresAt)
			}
			if *m.Kind != *tt.want.Kind {
				t.Errorf("kind %q, want %q", *m.Kind, *tt.want.Kind)
			}
			if got := strings.Join(*m.Scopes, " "); got != wantScopes[tt.name] {
				t.Errorf("scopes %q, want %q", got, wantScopes[tt.name])
			}
			if *m.Admin != (wantScopes[tt.name] == "admin") || *m.AnyUser {
				t.Errorf("admin %v, any_user %v", *m.Admin, *m.AnyUser)
			}
		})
	}
	f.t = t

	// Expired, revoked, unknown: 401, as on every route.
	f.do("GET", "/v1/me", "adt_unknown", "").problem(http.StatusUnauthorized)
	expired := signClaims(t, jwt.MapClaims{"sub": "42", "scope": "events:read", "exp": time.Now().Add(-time.Hour).Unix()})
	f.do("GET", "/v1/me", expired, "").problem(http.StatusUnauthorized)
	if err := f.tokens.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	f.serve(request{method: "GET", path: "/v1/me", header: map[string]string{"Authorization": "Token " + expiring}}).problem(http.StatusUnauthorized)
	f.do("GET", "/v1/me", "", "").problem(http.StatusUnauthorized)
	// It takes no parameters, and nothing may cache it.
	f.do("GET", "/v1/me?user_id=1", f.admin, "").problem(http.StatusBadRequest)
	if r := f.do("GET", "/v1/me", f.admin, "").want(http.StatusOK); r.hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", r.hdr.Get("Cache-Control"))
	}
	f.do("POST", "/v1/me", f.admin, "{}").problem(http.StatusMethodNotAllowed)
}

// TestMeExpiresWithTheToken: a token created with a TTL says so, and
// once the clock passes it the same request is 401.
func TestMeExpiresWithTheToken(t *testing.T) {
	f := newFixture(t)
	secret, tok := f.tokenWith(app.TokenSpec{UserID: 3, Scopes: []domain.Scope{domain.ScopeRead}, TTL: time.Minute})
	m := f.do("GET", "/v1/me", secret, "").me()
	if m.ExpiresAt == nil || *m.ExpiresAt != domain.FormatTime(tok.ExpiresAt) {
		t.Fatalf("expires_at %v, want %s", m.ExpiresAt, domain.FormatTime(tok.ExpiresAt))
	}
	if at, err := time.Parse(time.RFC3339Nano, *m.ExpiresAt); err != nil || at.Sub(t0) > 2*time.Minute || at.Before(t0) {
		t.Fatalf("expires_at %s is not a minute after the clock's %s", *m.ExpiresAt, t0)
	}
}

func TestMeAuthDisabled(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.AuthDisabled = true }))
	m := f.do("GET", "/v1/me", "", "").me()
	if *m.Kind != "none" || *m.Name != "anonymous" || !*m.Admin || m.UserID != nil || m.ExpiresAt != nil || strings.Join(*m.Scopes, ",") != "admin" {
		t.Fatalf("AUTH_MODE=none: %s", f.do("GET", "/v1/me", "", "").body)
	}
}

func TestActions(t *testing.T) {
	type actionsDoc struct {
		Actions []string `json:"actions"`
		Any     bool     `json:"any"`
	}
	decode := func(r *response) actionsDoc {
		t.Helper()
		r.want(http.StatusOK)
		var d actionsDoc
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil || d.Actions == nil {
			t.Fatalf("%s: not an actions document: %v", r, err)
		}
		return d
	}
	f := newFixture(t)
	d := decode(f.do("GET", "/v1/actions", f.u1ro, ""))
	if got := strings.Join(d.Actions, ","); got != "created,deleted,login,logout,updated,upload_file,viewed" || d.Any {
		t.Errorf("default vocabulary: %v, any %v", d.Actions, d.Any)
	}
	f.do("GET", "/v1/actions", f.u1wo, "").problem(http.StatusForbidden) // no events:read
	f.do("GET", "/v1/actions", "", "").problem(http.StatusUnauthorized)
	f.do("GET", "/v1/actions?x=1", f.admin, "").problem(http.StatusBadRequest)

	for _, tt := range []struct {
		name   string
		limits domain.Limits
		want   string
		any    bool
	}{
		{"configured", domain.Limits{Actions: mustVocabulary(t, "Signed_Up", "paid", "a.b:c-d")}, "a.b:c-d,paid,signed_up", false},
		{"any (ACTIONS=*)", domain.Limits{Actions: domain.AnyAction()}, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.srv = httpapi.NewServer(httpapi.Config{Events: app.NewEvents(f.store, newClock(), tt.limits), Auth: f.tokens})
			d := decode(f.do("GET", "/v1/actions", f.admin, ""))
			if got := strings.Join(d.Actions, ","); got != tt.want || d.Any != tt.any {
				t.Errorf("actions %q, any %v; want %q, %v", got, d.Any, tt.want, tt.any)
			}
		})
	}
}

func mustVocabulary(t *testing.T, actions ...string) domain.Vocabulary {
	t.Helper()
	v, err := domain.NewVocabulary(actions...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestUnauthenticatedWording: every 401 teaches the one wording of the
// README: an API token as Token (Bearer accepted too), a JWT as Bearer,
// and WWW-Authenticate offers both as two challenges.
func TestUnauthenticatedWording(t *testing.T) {
	f := newFixture(t)
	for _, hdr := range []string{"", "Basic dXNlcjpwYXNz", "Token adt_unknown", "Bearer adt_unknown"} {
		r := f.serve(request{method: "GET", path: "/v1/me", header: map[string]string{"Authorization": hdr}})
		p := r.problem(http.StatusUnauthorized)
		if got := r.hdr.Get("WWW-Authenticate"); got != `Token realm="activityd", Bearer realm="activityd"` {
			t.Errorf("Authorization %q: WWW-Authenticate %q", hdr, got)
		}
		if hdr == "" || strings.HasPrefix(hdr, "Basic") {
			for _, want := range []string{"Authorization: Token <token>", "Bearer <jwt>"} {
				if !strings.Contains(p.Detail, want) {
					t.Errorf("Authorization %q: detail %q does not say %q", hdr, p.Detail, want)
				}
			}
			if strings.Contains(p.Detail, "Bearer <token>\"") || strings.HasSuffix(p.Detail, "Bearer <token>") {
				t.Errorf("detail %q teaches Bearer for API tokens", p.Detail)
			}
		}
	}
}
