package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scope is a permission carried by a credential.
type Scope string

// The scopes a credential can carry. ScopeAdmin implies the others and lifts
// the own-user restriction.
const (
	ScopeRead  Scope = "events:read"
	ScopeWrite Scope = "events:write"
	ScopeAdmin Scope = "admin"
)

// ParseScopes parses a comma- or space-separated list of scopes; unknown
// scopes are an error (a typo must not silently grant less, or more).
func ParseScopes(s string) ([]Scope, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	var out []Scope
	for _, f := range fields {
		sc := Scope(f)
		switch sc {
		case ScopeRead, ScopeWrite, ScopeAdmin:
		default:
			return nil, fmt.Errorf("unknown scope %q (known: events:read, events:write, admin)", f)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// Principal is who a request acts as.
type Principal struct {
	// Name identifies the credential in status history and logs, e.g.
	// "token:3f9a…" or "jwt:42"; never a secret.
	Name   string
	UserID int64 // 0 for a credential bound to no user (admin only)
	Scopes []Scope
	// AnyUser lets a principal bound to no user act on any one user it
	// names, with its Scopes only (never across users at once, which
	// stays an admin's): a client of a predecessor that sent no
	// credential, under the operator's migration setting.
	AnyUser bool
	// ExpiresAt is when the credential stops being accepted (a token's
	// expiry, a JWT's exp claim); zero: never.
	ExpiresAt time.Time
	// Kind is how the principal authenticated; "" for one made otherwise
	// (a CLI command's), which CredentialKind then tells by its Name.
	Kind CredentialKind
}

// CredentialKind is how a principal authenticated.
type CredentialKind string

// The kinds of credential.
const (
	KindToken     CredentialKind = "token"     // an API token
	KindJWT       CredentialKind = "jwt"       // a JSON Web Token
	KindAnonymous CredentialKind = "anonymous" // none, under the migration setting (AnyUser)
	KindNone      CredentialKind = "none"      // authentication is off (AUTH_MODE=none)
)

// CredentialKind returns p.Kind, or when it is unset the kind p's Name
// says ("token:…", "jwt:…", "anonymous:…"); KindToken otherwise.
func (p Principal) CredentialKind() CredentialKind {
	if p.Kind != "" {
		return p.Kind
	}
	switch prefix, _, _ := strings.Cut(p.Name, ":"); CredentialKind(prefix) {
	case KindJWT:
		return KindJWT
	case KindAnonymous:
		return KindAnonymous
	}
	return KindToken
}

// Has reports whether p carries scope s; admin carries every scope.
func (p Principal) Has(s Scope) bool {
	return slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, ScopeAdmin)
}

// IsAdmin reports whether p may act on every user.
func (p Principal) IsAdmin() bool { return slices.Contains(p.Scopes, ScopeAdmin) }

// Authorize returns nil when p carries scope s and may act on userID
// (0 meaning "every user", which only an admin may). Otherwise it returns
// an error matching ErrForbidden that says why.
func (p Principal) Authorize(s Scope, userID int64) error {
	if !p.Has(s) {
		return fmt.Errorf("%w: the credential lacks scope %s", ErrForbidden, s)
	}
	if p.IsAdmin() {
		return nil
	}
	if p.AnyUser {
		if userID == 0 {
			return fmt.Errorf("%w: a request without a credential acts for one user at a time; give user_id", ErrForbidden)
		}
		return nil
	}
	if userID == 0 {
		return fmt.Errorf("%w: only an admin may act across users; give user_id=%d", ErrForbidden, p.UserID)
	}
	if userID != p.UserID {
		return fmt.Errorf("%w: the credential acts for user %d only", ErrForbidden, p.UserID)
	}
	return nil
}

// Token is an API token as stored: never the secret, only its hash.
type Token struct {
	ID        string
	Name      string
	UserID    int64
	Scopes    []Scope
	Hash      []byte // SHA-256 of the secret
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
}

// Active reports whether the token may be used at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// Principal returns who a request authenticated with t acts as.
func (t Token) Principal() Principal {
	return Principal{Name: "token:" + t.ID, UserID: t.UserID, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt, Kind: KindToken}
}
