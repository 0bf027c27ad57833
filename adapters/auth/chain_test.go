package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/domain"
)

// fakeTokens stands in for the API-token authenticator (*app.Tokens).
type fakeTokens struct {
	calls []string
}

func (f *fakeTokens) Authenticate(_ context.Context, credential string) (domain.Principal, error) {
	f.calls = append(f.calls, credential)
	if credential == "adt_good" {
		return domain.Principal{Name: "token:t1", UserID: 9, Scopes: []domain.Scope{domain.ScopeRead}}, nil
	}
	return domain.Principal{}, errors.Join(domain.ErrUnauthenticated, errors.New("unknown token"))
}

func TestChain(t *testing.T) {
	j := newJWT(t, JWTConfig{Secret: testSecret})
	goodJWT := sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("42", "events:write"))
	badJWT := sign(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong-secret"), claimsFor("42", "admin"))

	cases := []struct {
		name       string
		jwt        *JWT
		credential string
		wantName   string // "" → expect ErrUnauthenticated
		why        string
		toTokens   bool // whether the token authenticator must be asked
	}{
		{name: "API token to tokens", jwt: j, credential: "adt_good", wantName: "token:t1", toTokens: true},
		{name: "unknown API token", jwt: j, credential: "adt_nope", why: "unknown token", toTokens: true},
		{name: "dotted non-JWT secret to tokens", jwt: j, credential: "my.bootstrap.secret", why: "unknown token", toTokens: true},
		{name: "JWT to jwt", jwt: j, credential: goodJWT, wantName: "jwt:42"},
		{name: "bad JWT stays with jwt", jwt: j, credential: badJWT, why: "invalid signature"},
		{name: "JWT without JWT configured", jwt: nil, credential: goodJWT, why: "JWT authentication is not configured"},
		{name: "API token without JWT configured", jwt: nil, credential: "adt_good", wantName: "token:t1", toTokens: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tokens := &fakeTokens{}
			p, err := Chain(c.jwt, tokens).Authenticate(context.Background(), c.credential)
			if c.wantName != "" {
				if err != nil || p.Name != c.wantName {
					t.Fatalf("got %+v, %v; want principal %s", p, err, c.wantName)
				}
			} else {
				if !errors.Is(err, domain.ErrUnauthenticated) || !strings.Contains(err.Error(), c.why) {
					t.Fatalf("err = %v, want ErrUnauthenticated containing %q", err, c.why)
				}
			}
			if asked := len(tokens.calls) > 0; asked != c.toTokens {
				t.Fatalf("token authenticator asked = %v, want %v", asked, c.toTokens)
			}
		})
	}
}

func TestChainWithoutTokens(t *testing.T) {
	_, err := Chain(nil, nil).Authenticate(context.Background(), "adt_x")
	if !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("err = %v", err)
	}
}
