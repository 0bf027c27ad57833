package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// TokenPrefix starts every secret this service issues, so a leaked one is
// easy to recognise (and to scan for).
const TokenPrefix = "adt_"

// MinSecretLen is the shortest secret accepted from BOOTSTRAP_ADMIN_TOKEN.
const MinSecretLen = 24

// Tokens is the API-token use cases.
type Tokens struct {
	store ports.Tokens
	clock ports.Clock
}

// NewTokens returns the token use cases over store.
func NewTokens(store ports.Tokens, clock ports.Clock) *Tokens {
	return &Tokens{store: store, clock: clock}
}

// TokenSpec describes a token to create.
type TokenSpec struct {
	Name   string
	UserID int64 // required unless Scopes holds admin
	Scopes []domain.Scope
	TTL    time.Duration // 0: never expires

	id string // fixed id (the bootstrap token's); "" for a random one
}

// BootstrapTokenID is the id of the admin token Bootstrap creates. A fixed
// id makes concurrent bootstraps of several replicas collide in the store,
// so exactly one creates it.
const BootstrapTokenID = "bootstrap"

// Create issues a new token and returns its secret, which is shown once and
// stored only as a hash.
func (s *Tokens) Create(ctx context.Context, spec TokenSpec) (secret string, t domain.Token, err error) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // 256 bits; crypto/rand.Read never fails
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	t, err = s.create(ctx, spec, secret)
	if err != nil {
		// Never hand out a secret for a token that was not stored.
		return "", domain.Token{}, err
	}
	return secret, t, nil
}

func (s *Tokens) create(ctx context.Context, spec TokenSpec, secret string) (domain.Token, error) {
	if len(spec.Scopes) == 0 {
		return domain.Token{}, domain.Invalid("scope", domain.CodeRequired, "name at least one scope (events:read, events:write, admin)")
	}
	admin := domain.Principal{Scopes: spec.Scopes}.IsAdmin()
	if spec.UserID < 0 || (spec.UserID == 0 && !admin) {
		return domain.Token{}, domain.Invalid("user", domain.CodeRequired, "a token without the admin scope must name a positive user id")
	}
	if spec.TTL < 0 {
		return domain.Token{}, domain.Invalid("ttl", domain.CodeOutOfRange, "must not be negative")
	}
	id := spec.id
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	now := domain.Normalize(s.clock.Now())
	t := domain.Token{
		ID:        id,
		Name:      spec.Name,
		UserID:    spec.UserID,
		Scopes:    spec.Scopes,
		Hash:      HashSecret(secret),
		CreatedAt: now,
	}
	if spec.TTL > 0 {
		t.ExpiresAt = now.Add(spec.TTL)
	}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return domain.Token{}, fmt.Errorf("create token: %w", err)
	}
	return t, nil
}

// HashSecret is how secrets are stored. A secret carries 256 random bits,
// so a fast hash suffices: there is nothing to brute-force.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// List returns every token (never a secret).
func (s *Tokens) List(ctx context.Context) ([]domain.Token, error) {
	ts, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// Revoke makes the token unusable at once.
func (s *Tokens) Revoke(ctx context.Context, id string) error {
	if err := s.store.RevokeToken(ctx, id, domain.Normalize(s.clock.Now())); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// Authenticate returns the principal a secret stands for, or
// domain.ErrUnauthenticated for an unknown, expired or revoked one. It
// asks the store every time; a store that caches tokens (or unknown
// hashes) must see a creation and a revocation at once on every replica
// (PostgreSQL's cache is emptied by LISTEN/NOTIFY).
func (s *Tokens) Authenticate(ctx context.Context, secret string) (domain.Principal, error) {
	if secret == "" {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	t, err := s.store.TokenByHash(ctx, HashSecret(secret))
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Principal{}, fmt.Errorf("%w: unknown token", domain.ErrUnauthenticated)
	}
	if err != nil {
		return domain.Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if !t.Active(s.clock.Now()) {
		return domain.Principal{}, fmt.Errorf("%w: token expired or revoked", domain.ErrUnauthenticated)
	}
	return t.Principal(), nil
}

// Bootstrap makes sure an admin can get in: when the store holds no token
// at all it creates an admin token, from given when set (BOOTSTRAP_ADMIN_TOKEN)
// or else a fresh one, and returns its secret with created == true. Once any
// token exists it does nothing.
func (s *Tokens) Bootstrap(ctx context.Context, given string) (secret string, created bool, err error) {
	ts, err := s.store.ListTokens(ctx)
	if err != nil {
		return "", false, fmt.Errorf("bootstrap: %w", err)
	}
	if len(ts) > 0 {
		return "", false, nil
	}
	spec := TokenSpec{Name: "bootstrap-admin", Scopes: []domain.Scope{domain.ScopeAdmin}, id: BootstrapTokenID}
	if given == "" {
		secret, _, err = s.Create(ctx, spec)
	} else {
		if len(given) < MinSecretLen || strings.ContainsAny(given, " \t\r\n") {
			return "", false, fmt.Errorf("BOOTSTRAP_ADMIN_TOKEN must be at least %d characters without spaces", MinSecretLen)
		}
		secret = given
		_, err = s.create(ctx, spec, given)
	}
	if err != nil {
		// Several replicas starting at once may race to bootstrap; the one
		// that lost sees a token now and has nothing left to do.
		if ts, lerr := s.store.ListTokens(ctx); lerr == nil && len(ts) > 0 {
			return "", false, nil
		}
		return "", false, err
	}
	return secret, true, nil
}
