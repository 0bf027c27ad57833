package auth

import (
	"context"

	"github.com/activityd/activityd/domain"
)

// Authenticator is what the HTTP adapter calls: it turns the credential
// from `Authorization: Bearer|Token <credential>` into a principal, or
// returns an error matching domain.ErrUnauthenticated.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (domain.Principal, error)
}

// Chain routes a credential by its shape: one that LooksLikeJWT goes to
// jwtAuth (or is refused with "JWT authentication is not configured" when
// jwtAuth is nil), anything else to tokens (the API tokens, *app.Tokens).
// A credential is tried by one authenticator only, so a bad JWT never costs
// a token-store lookup.
func Chain(jwtAuth *JWT, tokens Authenticator) Authenticator {
	return chain{jwt: jwtAuth, tokens: tokens}
}

type chain struct {
	jwt    *JWT
	tokens Authenticator
}

func (c chain) Authenticate(ctx context.Context, credential string) (domain.Principal, error) {
	if LooksLikeJWT(credential) {
		if c.jwt == nil {
			return domain.Principal{}, unauthenticated("JWT authentication is not configured")
		}
		return c.jwt.Authenticate(ctx, credential)
	}
	if c.tokens == nil {
		return domain.Principal{}, unauthenticated("API tokens are not configured")
	}
	return c.tokens.Authenticate(ctx, credential)
}
