package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/domain"
)

// FuzzAuthenticate: no input panics, none authenticates (the fuzzer cannot
// forge a signature), every failure matches ErrUnauthenticated, and no
// error echoes the input.
func FuzzAuthenticate(f *testing.F) {
	srv := newJWKSServer(f, standardKeys()...)
	j := newJWT(f, JWTConfig{Secret: testSecret, JWKSURL: srv.URL, Issuer: testIssuer})
	chain := Chain(j, &fakeTokens{})

	// Seeds: well-formed tokens signed with keys the authenticator does not
	// trust, and broken ones. No seed is valid.
	c := with(claimsFor("42", "events:read admin"), "iss", testIssuer)
	for _, s := range []string{
		sign(f, jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-not-the"), c),
		sign(f, jwt.SigningMethodRS256, rsaAttacker(), c, "kid", "rsa-1"),
		sign(f, jwt.SigningMethodES256, ecAttacker(), c, "kid", "ec-1"),
		sign(f, jwt.SigningMethodRS256, rsaAttacker(), c),
		sign(f, jwt.SigningMethodHS256, rsaPublicPEM(&rsaKey1().PublicKey), c, "kid", "rsa-1"),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c),
		sign(f, jwt.SigningMethodHS256, testSecret, with(c, "exp", time.Now().Add(-time.Hour).Unix())),
		sign(f, jwt.SigningMethodHS256, testSecret, with(c, "iss", "https://evil.example/")),
		raw(map[string]any{"alg": "HS256", "crit": []string{"b64"}}, c, "c2ln"),
		raw(map[string]any{"alg": "RS256", "kid": 1}, c, "c2ln"),
		"", ".", "..", "a.b.c", "adt_x", "eyJ.eyJ.x", "\x00.\xff.\n",
	} {
		f.Add(s)
	}
	known := strings.Join([]string{
		"unauthenticated: malformed token invalid signature token expired not valid yet (nbf) issued in the future (iat)",
		"no exp claim no sub claim wrong issuer (iss) wrong audience (aud) invalid token missing token too large",
		"signing algorithm not accepted (accepted: HS256, RS256, ES256) unknown signing key (kid) no signing key available",
		"no signing key for the token's algorithm signing key does not fit the token's algorithm",
		"unsupported critical header (crit) malformed token: kid must be a non-empty string",
		"sub claim too long sub claim holds invalid characters",
		"sub must be a positive decimal user id unless the token carries the admin scope",
		"JWT authentication is not configured unknown token",
	}, " ")

	f.Fuzz(func(t *testing.T, s string) {
		_ = LooksLikeJWT(s)
		for _, a := range []Authenticator{j, chain} {
			p, err := a.Authenticate(context.Background(), s)
			if err == nil {
				t.Fatalf("authenticated %+v from %q", p, s)
			}
			if !errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if msg := err.Error(); len(s) >= 4 && strings.Contains(msg, s) && !strings.Contains(known, s) {
				t.Fatalf("err %q echoes the input", msg)
			}
		}
	})
}
