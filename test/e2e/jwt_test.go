package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/test/binary"
)

const jwtSecret = "e2e-jwt-secret-0123456789abcdefghijklmnop"

func hs256(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWT runs the binary with JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE and
// checks each kind of token gets its status on the /v1 and activity-logger
// surfaces.
func TestJWT(t *testing.T) {
	dir := t.TempDir()
	p := binary.Start(t, dir, "DATABASE_URL=memory:", "JWT_SECRET="+jwtSecret, "JWT_ISSUER=https://idp.test", "JWT_AUDIENCE=activityd",
		"BOOTSTRAP_ADMIN_TOKEN=jwt-admin-token-0123456789abcdef")
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "42", "scope": "events:read events:write", "iss": "https://idp.test", "aud": "activityd",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	valid := hs256(t, jwtSecret, claims(nil))
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		strings.Split(valid, ".")[1] + "."

	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"valid", valid, 201},
		{"expired", hs256(t, jwtSecret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), 401},
		{"not yet valid", hs256(t, jwtSecret, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), 401},
		{"wrong signature", hs256(t, "another-secret-0123456789abcdefghijklmnop", claims(nil)), 401},
		{"wrong issuer", hs256(t, jwtSecret, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), 401},
		{"wrong audience", hs256(t, jwtSecret, claims(func(c jwt.MapClaims) { c["aud"] = "other" })), 401},
		{"alg none", unsigned, 401},
		{"malformed", "eyJhbGciOiJIUzI1NiJ9.e30.not-a-signature", 401},
		{"no write scope", hs256(t, jwtSecret, claims(func(c jwt.MapClaims) { c["scope"] = "events:read" })), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := binary.CallBearer(t, "POST", p.Base+"/v1/events", tc.token, `{"action":"login"}`)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
			if tc.status == 201 && r.Body["user_id"] != float64(42) {
				t.Fatalf("recorded for %v, want the JWT's sub 42", r.Body["user_id"])
			}
		})
	}

	r := binary.CallBearer(t, "POST", p.Base+"/api/logs/", valid, `{"action":"LOGIN"}`)
	binary.Want(t, r, 201)
	if r.Body["user"] != float64(42) || r.Body["action"] != "LOGIN" {
		t.Fatalf("activity-logger create with a JWT: %s", r.Raw)
	}
	binary.Want(t, binary.CallBearer(t, "GET", p.Base+"/api/logs/43", valid, ""), 403)
}
