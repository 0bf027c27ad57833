package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/domain"
)

const (
	testIssuer   = "https://idp.example.test/"
	testAudience = "activityd"
)

func TestAuthenticate(t *testing.T) {
	srv := newJWKSServer(t, standardKeys()...)
	log := &logBuffer{}
	auths := map[string]*JWT{
		// HS256 and JWKS both configured, no iss/aud.
		"both": newJWT(t, JWTConfig{Secret: testSecret, JWKSURL: srv.URL, Logger: log.logger()}),
		// Issuer and audience checked.
		"strict": newJWT(t, JWTConfig{Secret: testSecret, JWKSURL: srv.URL, Issuer: testIssuer, Audience: testAudience, Logger: log.logger()}),
		"secret": newJWT(t, JWTConfig{Secret: testSecret}),
		"jwks":   newJWT(t, JWTConfig{JWKSURL: srv.URL, Logger: log.logger()}),
	}

	rs, es, hs := jwt.SigningMethodRS256, jwt.SigningMethodES256, jwt.SigningMethodHS256
	user42 := claimsFor("42", "events:read events:write")
	now := time.Now()
	rw := []domain.Scope{domain.ScopeRead, domain.ScopeWrite}
	p42 := &domain.Principal{Name: "jwt:42", UserID: 42, Scopes: rw}
	valid := sign(t, hs, testSecret, user42)
	parts := strings.Split(valid, ".")

	type tc struct {
		name  string
		auth  string // key of auths; "" → "both"
		token string
		want  *domain.Principal // nil: expect ErrUnauthenticated
		why   string            // substring of the error when want is nil
	}
	cases := []tc{
		// Valid tokens, each algorithm.
		{name: "valid HS256", token: valid, want: p42},
		{name: "valid RS256", token: sign(t, rs, rsaKey1(), user42, "kid", "rsa-1"), want: p42},
		{name: "valid ES256", token: sign(t, es, ecKey1(), user42, "kid", "ec-1"), want: p42},
		{name: "valid RS256 without kid tries every fitting key", token: sign(t, rs, rsaKey1(), user42), want: p42},
		{name: "valid ES256 without kid tries every fitting key", token: sign(t, es, ecKey1(), user42), want: p42},
		{name: "HS256 only secret configured", auth: "secret", token: valid, want: p42},
		{name: "RS256 only JWKS configured", auth: "jwks", token: sign(t, rs, rsaKey1(), user42, "kid", "rsa-1"), want: p42},
		{name: "HS256 ignores kid", token: sign(t, hs, testSecret, user42, "kid", "rsa-1"), want: p42},

		// Time claims and leeway (default 30s).
		{name: "expired", token: sign(t, hs, testSecret, with(user42, "exp", now.Add(-5*time.Minute).Unix())), why: "token expired"},
		{name: "expired within leeway accepted", token: sign(t, hs, testSecret, with(user42, "exp", now.Add(-10*time.Second).Unix())), want: p42},
		{name: "not yet valid", token: sign(t, hs, testSecret, with(user42, "nbf", now.Add(5*time.Minute).Unix())), why: "not valid yet"},
		{name: "nbf within leeway accepted", token: sign(t, hs, testSecret, with(user42, "nbf", now.Add(10*time.Second).Unix())), want: p42},
		{name: "issued in the future", token: sign(t, es, ecKey1(), with(user42, "iat", now.Add(5*time.Minute).Unix()), "kid", "ec-1"), why: "issued in the future"},
		{name: "missing exp", token: sign(t, hs, testSecret, with(user42, "exp", nil)), why: "no exp claim"},
		{name: "exp not a number", token: sign(t, hs, testSecret, with(user42, "exp", "tomorrow")), why: "malformed token"},

		// Signatures.
		{name: "wrong HS256 secret", token: sign(t, hs, []byte("another-secret-another-secret-another"), user42), why: "invalid signature"},
		{name: "RS256 signed by another key with a known kid", token: sign(t, rs, rsaAttacker(), user42, "kid", "rsa-1"), why: "invalid signature"},
		{name: "ES256 signed by another key with a known kid", token: sign(t, es, ecAttacker(), user42, "kid", "ec-1"), why: "invalid signature"},
		{name: "RS256 by another key without kid", token: sign(t, rs, rsaAttacker(), user42), why: "invalid signature"},
		{name: "payload swapped under a valid signature", token: parts[0] + "." + b64([]byte(`{"sub":"1","scope":"admin","exp":9999999999}`)) + "." + parts[2], why: "invalid signature"},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", why: "invalid signature"},

		// Issuer and audience.
		{name: "issuer and audience right", auth: "strict", token: sign(t, rs, rsaKey1(), with(user42, "iss", testIssuer, "aud", testAudience), "kid", "rsa-1"), want: p42},
		{name: "audience among several", auth: "strict", token: sign(t, hs, testSecret, with(user42, "iss", testIssuer, "aud", []string{"other", testAudience})), want: p42},
		{name: "wrong issuer", auth: "strict", token: sign(t, hs, testSecret, with(user42, "iss", "https://evil.example/", "aud", testAudience)), why: "wrong issuer"},
		{name: "missing issuer", auth: "strict", token: sign(t, hs, testSecret, with(user42, "aud", testAudience)), why: "wrong issuer"},
		{name: "wrong audience", auth: "strict", token: sign(t, hs, testSecret, with(user42, "iss", testIssuer, "aud", "someone-else")), why: "wrong audience"},
		{name: "missing audience", auth: "strict", token: sign(t, hs, testSecret, with(user42, "iss", testIssuer)), why: "wrong audience"},
		{name: "iss and aud not checked when not configured", token: sign(t, hs, testSecret, with(user42, "iss", "whoever", "aud", "whatever")), want: p42},

		// Algorithms.
		{name: "alg none, empty signature", token: raw(map[string]any{"alg": "none", "typ": "JWT"}, user42, ""), why: "signing algorithm not accepted"},
		{name: "alg none via the library", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, user42), why: "signing algorithm not accepted"},
		{name: "alg None, some signature", token: raw(map[string]any{"alg": "None"}, user42, "c2ln"), why: "signing algorithm not accepted"},
		{name: "alg missing", token: raw(map[string]any{"typ": "JWT"}, user42, "c2ln"), why: "signing algorithm not accepted"},
		{name: "alg HS512 not accepted", token: sign(t, jwt.SigningMethodHS512, testSecret, user42), why: "signing algorithm not accepted"},
		{name: "alg PS256 not accepted", token: sign(t, jwt.SigningMethodPS256, rsaKey1(), user42, "kid", "rsa-1"), why: "signing algorithm not accepted"},
		{name: "HS/RS confusion: HS256 keyed with the RSA public key PEM", token: sign(t, hs, rsaPublicPEM(&rsaKey1().PublicKey), user42, "kid", "rsa-1"), why: "invalid signature"},
		{name: "HS/RS confusion, JWKS only", auth: "jwks", token: sign(t, hs, rsaPublicPEM(&rsaKey1().PublicKey), user42, "kid", "rsa-1"), why: "signing algorithm not accepted"},
		{name: "RS256 when only a secret is configured", auth: "secret", token: sign(t, rs, rsaKey1(), user42, "kid", "rsa-1"), why: "signing algorithm not accepted"},
		{name: "ES256 when only a secret is configured", auth: "secret", token: sign(t, es, ecKey1(), user42, "kid", "ec-1"), why: "signing algorithm not accepted"},
		{name: "HS256 when only JWKS is configured", auth: "jwks", token: valid, why: "signing algorithm not accepted"},
		{name: "ES256 token naming an RSA key", token: sign(t, es, ecKey1(), user42, "kid", "rsa-1"), why: "does not fit"},
		{name: "RS256 token naming an EC key", token: sign(t, rs, rsaKey1(), user42, "kid", "ec-1"), why: "does not fit"},
		{name: "key marked for encryption", token: sign(t, rs, rsaKey2(), user42, "kid", "rsa-enc"), why: "does not fit"},
		{name: "RSA key under 2048 bits", token: sign(t, rs, rsaSmall(), user42, "kid", "rsa-small"), why: "does not fit"},
		{name: "EC key not on P-256", token: sign(t, es, ecKey1(), user42, "kid", "ec-384"), why: "does not fit"},
		{name: "alg ES384 not accepted", token: sign(t, jwt.SigningMethodES384, ecP384(), user42, "kid", "ec-384"), why: "signing algorithm not accepted"},
		{name: "unknown kid", token: sign(t, rs, rsaAttacker(), user42, "kid", "no-such-key"), why: "unknown signing key"},
		{name: "kid not a string", token: raw(map[string]any{"alg": "RS256", "kid": 7}, user42, "c2ln"), why: "kid must be"},
		{name: "crit header", token: sign(t, hs, testSecret, user42, "crit", "exp"), why: "crit"},

		// Malformed.
		{name: "empty", token: "", why: "missing token"},
		{name: "garbage", token: "not a token at all", why: "malformed token"},
		{name: "two segments", token: parts[0] + "." + parts[1], why: "malformed token"},
		{name: "four segments", token: valid + ".x", why: "malformed token"},
		{name: "bad base64 header", token: "!!!." + parts[1] + "." + parts[2], why: "malformed token"},
		{name: "bad base64 payload", token: parts[0] + ".%%%." + parts[2], why: "malformed token"},
		{name: "bad base64 signature", token: parts[0] + "." + parts[1] + ".***", why: "malformed token"},
		{name: "padded base64", token: parts[0] + "=." + parts[1] + "." + parts[2], why: "malformed token"},
		{name: "bad JSON header", token: raw("{alg: HS256", user42, "c2ln"), why: "malformed token"},
		{name: "bad JSON payload", token: raw(map[string]any{"alg": "HS256"}, `{"sub": 42,`, "c2ln"), why: "malformed token"},
		{name: "payload not an object", token: raw(map[string]any{"alg": "HS256"}, `[1,2]`, "c2ln"), why: "malformed token"},
		{name: "too large", token: strings.Repeat("a", MaxTokenLen+1), why: "too large"},

		// sub.
		{name: "missing sub", token: sign(t, hs, testSecret, claimsFor(nil, "events:read")), why: "no sub claim"},
		{name: "empty sub", token: sign(t, hs, testSecret, claimsFor("", "admin")), why: "no sub claim"},
		{name: "sub a JSON number", token: sign(t, hs, testSecret, claimsFor(42, "events:read")), why: "malformed token"},
		{name: "non-numeric sub without admin", token: sign(t, hs, testSecret, claimsFor("alice", "events:read events:write")), why: "sub must be a positive decimal user id"},
		{name: "sub zero", token: sign(t, hs, testSecret, claimsFor("0", "events:read")), why: "sub must be"},
		{name: "sub negative", token: sign(t, hs, testSecret, claimsFor("-42", "events:read")), why: "sub must be"},
		{name: "sub with plus sign", token: sign(t, hs, testSecret, claimsFor("+42", "events:read")), why: "sub must be"},
		{name: "sub with leading zero", token: sign(t, hs, testSecret, claimsFor("042", "events:read")), why: "sub must be"},
		{name: "sub beyond int64", token: sign(t, hs, testSecret, claimsFor("9223372036854775808", "events:read")), why: "sub must be"},
		{name: "sub with control character", token: sign(t, hs, testSecret, claimsFor("ali\nce", "admin")), why: "invalid characters"},
		{name: "sub too long", token: sign(t, hs, testSecret, claimsFor(strings.Repeat("x", 300), "admin")), why: "too long"},
		{name: "non-numeric sub with admin", token: sign(t, rs, rsaKey1(), claimsFor("ops-robot", "admin"), "kid", "rsa-1"),
			want: &domain.Principal{Name: "jwt:ops-robot", UserID: 0, Scopes: []domain.Scope{domain.ScopeAdmin}}},
		{name: "numeric sub with admin keeps the user id", token: sign(t, hs, testSecret, claimsFor("7", "openid admin")),
			want: &domain.Principal{Name: "jwt:7", UserID: 7, Scopes: []domain.Scope{domain.ScopeAdmin}}},
		{name: "largest user id", token: sign(t, hs, testSecret, claimsFor("9223372036854775807", "events:read")),
			want: &domain.Principal{Name: "jwt:9223372036854775807", UserID: 9223372036854775807, Scopes: []domain.Scope{domain.ScopeRead}}},

		// scope.
		{name: "unknown scopes ignored", token: sign(t, hs, testSecret, claimsFor("42", "openid profile events:read offline_access events:read")),
			want: &domain.Principal{Name: "jwt:42", UserID: 42, Scopes: []domain.Scope{domain.ScopeRead}}},
		{name: "no activityd scope authenticates with none", token: sign(t, hs, testSecret, claimsFor("42", "openid email")),
			want: &domain.Principal{Name: "jwt:42", UserID: 42}},
		{name: "no scope claim", token: sign(t, hs, testSecret, claimsFor("42", nil)),
			want: &domain.Principal{Name: "jwt:42", UserID: 42}},
		{name: "comma-joined scope is one unknown scope", token: sign(t, hs, testSecret, claimsFor("42", "events:read,admin")),
			want: &domain.Principal{Name: "jwt:42", UserID: 42}},
		{name: "comma-joined admin does not lift the sub rule", token: sign(t, hs, testSecret, claimsFor("alice", "events:read,admin")), why: "sub must be"},
		{name: "scope case matters", token: sign(t, hs, testSecret, claimsFor("42", "ADMIN Events:Read")),
			want: &domain.Principal{Name: "jwt:42", UserID: 42}},
		{name: "scope as an array", token: sign(t, hs, testSecret, claimsFor("42", []string{"events:write", "profile", "events:read"})),
			want: &domain.Principal{Name: "jwt:42", UserID: 42, Scopes: []domain.Scope{domain.ScopeWrite, domain.ScopeRead}}},
		{name: "scope with extra whitespace", token: sign(t, hs, testSecret, claimsFor("42", "  events:write\tevents:read  ")),
			want: &domain.Principal{Name: "jwt:42", UserID: 42, Scopes: []domain.Scope{domain.ScopeWrite, domain.ScopeRead}}},
		{name: "scope of the wrong type", token: sign(t, hs, testSecret, claimsFor("42", 5)), why: "malformed token"},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := c.auth
			if name == "" {
				name = "both"
			}
			p, err := auths[name].Authenticate(context.Background(), c.token)
			if c.want != nil {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if p.Name != c.want.Name || p.UserID != c.want.UserID || !slices.Equal(p.Scopes, c.want.Scopes) {
					t.Fatalf("principal = %+v, want %+v", p, *c.want)
				}
				if p.Kind != domain.KindJWT || p.ExpiresAt.IsZero() {
					t.Fatalf("principal = %+v, want kind jwt and the exp claim as ExpiresAt", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("Authenticate succeeded with %+v, want an error containing %q", p, c.why)
			}
			if !errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Fatalf("err = %q, want it to contain %q", err, c.why)
			}
			if !reflectsNothing(err.Error(), c.token) {
				t.Fatalf("err %q echoes the token", err)
			}
			if p.Name != "" || p.UserID != 0 || p.Scopes != nil {
				t.Fatalf("principal = %+v on failure, want zero", p)
			}
		})
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("unexpected warnings:\n%s", log)
	}
}

// TestAuthenticateExpiresAt: the principal carries the token's exp claim,
// to the second, in UTC, so that GET /v1/me can say when to sign in again.
func TestAuthenticateExpiresAt(t *testing.T) {
	j := newJWT(t, JWTConfig{Secret: testSecret})
	for _, in := range []time.Duration{time.Minute, 90 * time.Minute, 24 * time.Hour} {
		exp := time.Now().Add(in).Truncate(time.Second)
		tok := sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor("42", "events:read"), "exp", exp.Unix()))
		p, err := j.Authenticate(context.Background(), tok)
		if err != nil {
			t.Fatalf("exp in %v: %v", in, err)
		}
		if !p.ExpiresAt.Equal(exp) || p.ExpiresAt.Location() != time.UTC {
			t.Errorf("exp in %v: ExpiresAt = %v, want %v in UTC", in, p.ExpiresAt, exp.UTC())
		}
	}
}

// reflectsNothing reports whether msg contains none of token's segments.
func reflectsNothing(msg, token string) bool {
	for seg := range strings.SplitSeq(token, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			return false
		}
	}
	return true
}

func TestLeewayConfigured(t *testing.T) {
	j := newJWT(t, JWTConfig{Secret: testSecret, Leeway: 2 * time.Minute})
	exp := time.Now().Add(-90 * time.Second).Unix()
	if _, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor("1", "events:read"), "exp", exp))); err != nil {
		t.Fatalf("expired 90s ago with 2m leeway: %v", err)
	}
	exp = time.Now().Add(-3 * time.Minute).Unix()
	_, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor("1", "events:read"), "exp", exp)))
	if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired 3m ago with 2m leeway: err = %v", err)
	}
}

func TestNewJWTConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  JWTConfig
		why  string
	}{
		{"neither secret nor JWKS", JWTConfig{Issuer: testIssuer}, "JWT_SECRET or JWT_JWKS_URL"},
		{"short secret", JWTConfig{Secret: []byte("short")}, "JWT_SECRET must be at least 32 bytes"},
		{"JWKS URL not a URL", JWTConfig{JWKSURL: "::not a url"}, "JWT_JWKS_URL"},
		{"JWKS URL relative", JWTConfig{JWKSURL: "/jwks.json"}, "JWT_JWKS_URL"},
		{"JWKS URL of another scheme", JWTConfig{JWKSURL: "file:///etc/jwks.json"}, "JWT_JWKS_URL"},
		{"negative leeway", JWTConfig{Secret: testSecret, Leeway: -time.Second}, "leeway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := NewJWT(context.Background(), c.cfg)
			if err == nil {
				j.Close()
				t.Fatalf("NewJWT succeeded, want an error containing %q", c.why)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Fatalf("err = %q, want it to contain %q", err, c.why)
			}
			if strings.Contains(err.Error(), string(testSecret)) {
				t.Fatalf("err %q shows the secret", err)
			}
		})
	}
}

// The decision under test: a JWKS that cannot be fetched at start does not
// fail start-up. NewJWT logs a warning naming JWT_JWKS_URL, JWKS tokens get
// 401 meanwhile, and once the endpoint answers, the next token with an
// unknown kid loads the set.
func TestJWKSUnreachableAtStart(t *testing.T) {
	t.Run("endpoint errors, then recovers", func(t *testing.T) {
		srv := newJWKSServer(t, standardKeys()...)
		srv.status.Store(503)
		log := &logBuffer{}
		j := newJWT(t, JWTConfig{
			Secret: testSecret, JWKSURL: srv.URL + "/jwks.json", Logger: log.logger(),
			unknownKIDInterval: time.Nanosecond, // every unknown kid may refresh
		})
		if got := log.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "JWT_JWKS_URL") || !strings.Contains(got, "/jwks.json") {
			t.Fatalf("log = %q, want a warning naming JWT_JWKS_URL and the URL", got)
		}
		rsTok := sign(t, jwt.SigningMethodRS256, rsaKey1(), claimsFor("42", "events:read"), "kid", "rsa-1")
		_, err := j.Authenticate(context.Background(), rsTok)
		if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown signing key") {
			t.Fatalf("while the JWKS is down: err = %v", err)
		}
		// HS256 works all along.
		if _, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("42", "events:read"))); err != nil {
			t.Fatalf("HS256 while the JWKS is down: %v", err)
		}

		srv.status.Store(0)
		hits := srv.hits.Load()
		p, err := j.Authenticate(context.Background(), rsTok)
		if err != nil || p.UserID != 42 {
			t.Fatalf("after the JWKS recovered: %+v, %v", p, err)
		}
		if srv.hits.Load() != hits+1 {
			t.Fatalf("JWKS fetched %d times on recovery, want 1", srv.hits.Load()-hits)
		}
		// Now cached: no further fetch.
		if _, err := j.Authenticate(context.Background(), rsTok); err != nil {
			t.Fatal(err)
		}
		if srv.hits.Load() != hits+1 {
			t.Fatalf("a known kid fetched the JWKS again")
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		srv := newJWKSServer(t)
		url := srv.URL
		srv.Close()
		log := &logBuffer{}
		j, err := NewJWT(context.Background(), JWTConfig{JWKSURL: url, Logger: log.logger()})
		if err != nil {
			t.Fatalf("NewJWT: %v, want start-up to go on", err)
		}
		defer j.Close()
		if !strings.Contains(log.String(), "JWT_JWKS_URL") {
			t.Fatalf("log = %q, want a warning naming JWT_JWKS_URL", log)
		}
		_, err = j.Authenticate(context.Background(), sign(t, jwt.SigningMethodRS256, rsaKey1(), claimsFor("42", "events:read"), "kid", "rsa-1"))
		if !errors.Is(err, domain.ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("URL credentials are not logged", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.status.Store(500)
		log := &logBuffer{}
		j := newJWT(t, JWTConfig{JWKSURL: strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1), Logger: log.logger()})
		_ = j
		if got := log.String(); strings.Contains(got, "hunter2") || !strings.Contains(got, "JWT_JWKS_URL") {
			t.Fatalf("log = %q", got)
		}
	})
}

// An unknown kid makes the key set refresh, at most once per interval; a key
// rotated in is then accepted and a key rotated out refused.
func TestJWKSRotation(t *testing.T) {
	t.Run("rotated key picked up, removed key refused", func(t *testing.T) {
		srv := newJWKSServer(t, rsaJWK("rsa-1", &rsaKey1().PublicKey))
		j := newJWT(t, JWTConfig{JWKSURL: srv.URL}) // default rate limit
		old := sign(t, jwt.SigningMethodRS256, rsaKey1(), claimsFor("42", "events:read"), "kid", "rsa-1")
		if _, err := j.Authenticate(context.Background(), old); err != nil {
			t.Fatalf("before rotation: %v", err)
		}

		srv.set(rsaJWK("rsa-2", &rsaKey2().PublicKey), ecJWK("ec-1", &ecKey1().PublicKey))
		rotated := sign(t, jwt.SigningMethodRS256, rsaKey2(), claimsFor("43", "events:write"), "kid", "rsa-2")
		p, err := j.Authenticate(context.Background(), rotated)
		if err != nil || p.UserID != 43 || p.Name != "jwt:43" {
			t.Fatalf("after rotation: %+v, %v", p, err)
		}
		// The refresh replaced the set: rsa-1 is gone.
		_, err = j.Authenticate(context.Background(), old)
		if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown signing key") {
			t.Fatalf("key rotated out: err = %v", err)
		}
		// ec-1 came with the same refresh.
		if _, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodES256, ecKey1(), claimsFor("44", "events:read"), "kid", "ec-1")); err != nil {
			t.Fatalf("ec-1 after rotation: %v", err)
		}
	})
	t.Run("unknown kids refresh at most once per interval", func(t *testing.T) {
		srv := newJWKSServer(t, rsaJWK("rsa-1", &rsaKey1().PublicKey))
		j := newJWT(t, JWTConfig{JWKSURL: srv.URL})
		start := srv.hits.Load()
		for i := range 20 {
			_, err := j.Authenticate(context.Background(), sign(t, jwt.SigningMethodRS256, rsaAttacker(), claimsFor("42", "admin"), "kid", "forged-"+string(rune('a'+i))))
			if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown signing key") {
				t.Fatalf("forged kid: err = %v", err)
			}
		}
		if got := srv.hits.Load() - start; got != 1 {
			t.Fatalf("20 unknown kids fetched the JWKS %d times, want 1", got)
		}
	})
}

func TestJWKSBackgroundRefreshAndClose(t *testing.T) {
	srv := newJWKSServer(t, rsaJWK("rsa-1", &rsaKey1().PublicKey))
	ctx, cancel := context.WithCancel(context.Background())
	j, err := NewJWT(ctx, JWTConfig{JWKSURL: srv.URL, refreshInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cancel() // a start-up context ending does not stop the refresh
	srv.set(rsaJWK("rsa-2", &rsaKey2().PublicKey))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey2(), claimsFor("42", "events:read"), "kid", "rsa-2")
	// Wait for a background refresh to load rsa-2 (no token asks for it:
	// a read of an unknown kid would refresh by itself, so look at the
	// fetch count first).
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := j.Authenticate(context.Background(), tok); err != nil {
		t.Fatalf("after background refresh: %v", err)
	}
	j.Close()
	j.Close() // idempotent
	time.Sleep(20 * time.Millisecond)
	after := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.hits.Load(); got != after {
		t.Fatalf("JWKS fetched %d more times after Close", got-after)
	}
}

func TestNewJWTCancelled(t *testing.T) {
	srv := newJWKSServer(t, standardKeys()...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j, err := NewJWT(ctx, JWTConfig{JWKSURL: srv.URL})
	if !errors.Is(err, context.Canceled) {
		j.Close()
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNewJWTDeadlineDuringFirstFetch(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	j, err := NewJWT(ctx, JWTConfig{JWKSURL: hang.URL, Logger: (&logBuffer{}).logger()})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "JWT_JWKS_URL") {
		j.Close()
		t.Fatalf("err = %v, want DeadlineExceeded naming JWT_JWKS_URL", err)
	}
}

func TestJWKSResponseBounded(t *testing.T) {
	srv := newJWKSServer(t)
	huge := []byte(`{"keys":[` + strings.Repeat(" ", 2*maxJWKSBytes) + `]}`)
	srv.body.Store(&huge)
	log := &logBuffer{}
	j := newJWT(t, JWTConfig{JWKSURL: srv.URL, Logger: log.logger()})
	_ = j
	if !strings.Contains(log.String(), "JWT_JWKS_URL") {
		t.Fatalf("an oversized JWKS was accepted; log = %q", log)
	}
}

func TestNilAndClose(t *testing.T) {
	var j *JWT
	j.Close()
	_, err := j.Authenticate(context.Background(), "a.b.c")
	if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("nil JWT: err = %v", err)
	}
	k := newJWT(t, JWTConfig{Secret: testSecret})
	k.Close()
	k.Close()
	// A secret-only authenticator works after Close: Close only stops the
	// key-set refresh.
	if _, err := k.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("1", "events:read"))); err != nil {
		t.Fatal(err)
	}
}

func TestSecretCopied(t *testing.T) {
	secret := slices.Clone(testSecret)
	j := newJWT(t, JWTConfig{Secret: secret})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("1", "events:read"))
	clear(secret)
	if _, err := j.Authenticate(context.Background(), tok); err != nil {
		t.Fatalf("after the caller reused its secret buffer: %v", err)
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	srv := newJWKSServer(t, standardKeys()...)
	j := newJWT(t, JWTConfig{Secret: testSecret, JWKSURL: srv.URL, unknownKIDInterval: time.Millisecond})
	toks := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("1", "events:read")),
		sign(t, jwt.SigningMethodRS256, rsaKey1(), claimsFor("2", "events:read"), "kid", "rsa-1"),
		sign(t, jwt.SigningMethodES256, ecKey1(), claimsFor("3", "events:read"), "kid", "ec-1"),
	}
	bad := sign(t, jwt.SigningMethodRS256, rsaAttacker(), claimsFor("4", "admin"), "kid", "nope")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for n := range 20 {
				tok := toks[(i+n)%len(toks)]
				if _, err := j.Authenticate(context.Background(), tok); err != nil {
					t.Errorf("valid token: %v", err)
				}
				if _, err := j.Authenticate(context.Background(), bad); !errors.Is(err, domain.ErrUnauthenticated) {
					t.Errorf("bad token: %v", err)
				}
			}
		})
	}
	wg.Wait()
}

func TestLooksLikeJWT(t *testing.T) {
	valid := sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("1", "events:read"))
	cases := []struct {
		in   string
		want bool
	}{
		{valid, true},
		{raw(map[string]any{"alg": "none"}, "{}", "x"), true},
		{"adt_" + strings.Repeat("A", 43), false},
		{"adt_abc.def.ghi", false}, // header is not a JSON object
		{"my.bootstrap.token-with-dots", false},
		{"", false},
		{"..", false},
		{"a..c", false},
		{"eyJhbGciOiJIUzI1NiJ9.e30.", false}, // empty signature segment
		{"eyJhbGciOiJIUzI1NiJ9..c2ln", false},
		{"eyJhbGciOiJIUzI1NiJ9.e30.c2ln", true},
		{"eyJhbGciOiJIUzI1NiJ9.e30.c2ln.x", false},
		{"eyJhbGciOiJIUzI1NiJ9.e30", false},
		{"eyJhbGciOiJIUzI1NiJ9.e3+0.c2ln", false}, // '+' is not base64url
		{"eyJhbGciOiJIUzI1NiJ9=.e30.c2ln", false},
		{"eyJhbGciOiJIUzI1NiJ9.e30.c2ln ", false},
		{"Bearer " + valid, false},
	}
	for _, c := range cases {
		if got := LooksLikeJWT(c.in); got != c.want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
