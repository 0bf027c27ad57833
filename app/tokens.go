package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// TokenPrefix starts every secret this service issues, so a leaked one is
// easy to recognise (and to scan for).
const TokenPrefix = "adt_"

// MinSecretLen is the shortest secret accepted from BOOTSTRAP_ADMIN_TOKEN.
const MinSecretLen = 24

// MinImportedSecretLen is the shortest secret Import takes: a client's
// existing secret, such as a Django REST Framework token (40 hex
// characters, 160 random bits).
const MinImportedSecretLen = 16

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

// validate checks what a token to create must be.
func (spec TokenSpec) validate() error {
	if len(spec.Scopes) == 0 {
		return domain.Invalid("scope", domain.CodeRequired, "name at least one scope (events:read, events:write, admin)")
	}
	admin := domain.Principal{Scopes: spec.Scopes}.IsAdmin()
	if spec.UserID < 0 || (spec.UserID == 0 && !admin) {
		return domain.Invalid("user", domain.CodeRequired, "a token without the admin scope must name a positive user id")
	}
	if spec.TTL < 0 {
		return domain.Invalid("ttl", domain.CodeOutOfRange, "must not be negative")
	}
	return nil
}

func (s *Tokens) create(ctx context.Context, spec TokenSpec, secret string) (domain.Token, error) {
	if err := spec.validate(); err != nil {
		return domain.Token{}, err
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

// HashSecret is how secrets are stored. A secret this service issues
// carries 256 random bits, and one imported (Import) is a client's
// existing random secret of at least MinImportedSecretLen characters (a
// DRF token: 160 bits), so a fast hash suffices: there is nothing to
// brute-force.
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

// SecretImport is a secret a client already holds, with the token it is
// to become (Import).
type SecretImport struct {
	Spec   TokenSpec
	Secret string
}

// ImportSummary says what ImportAll did.
type ImportSummary struct {
	Imported int // stored now
	Present  int // already stored, for the same user and scopes
}

// ImportProblem is why ImportAll refused one of its secrets.
type ImportProblem struct {
	Index int // in ImportAll's list
	Err   error
}

// ImportError is ImportAll's refusal: the secrets that break a rule.
// Nothing was stored.
type ImportError struct{ Problems []ImportProblem }

func (e *ImportError) Error() string {
	msg := fmt.Sprintf("%d of the secrets to import refused, none imported", len(e.Problems))
	for _, p := range e.Problems {
		msg += fmt.Sprintf("; #%d: %v", p.Index+1, p.Err)
	}
	return msg
}

// Import stores a secret a client already holds (a DRF token) as the
// token spec describes, hashed as every secret is, so that the client
// keeps using it: Authenticate then knows it. The secret must be at least
// MinImportedSecretLen characters, without whitespace or control
// characters. A secret already stored for the same user and scopes is
// not stored again (created is false, and t is the stored token), so
// that an import can be run again; stored for another user or other
// scopes, or stored and since revoked or expired, it is refused (a
// domain.ValidationError naming "secret"). No error says the secret.
func (s *Tokens) Import(ctx context.Context, spec TokenSpec, secret string) (t domain.Token, created bool, err error) {
	t, present, err := s.checkImport(ctx, spec, secret)
	if err != nil || present {
		return t, false, err
	}
	t, err = s.create(ctx, spec, secret)
	if err != nil {
		// Another import of the same secret may have stored it meanwhile.
		if again, present, cerr := s.checkImport(ctx, spec, secret); cerr == nil && present {
			return again, false, nil
		}
		return domain.Token{}, false, fmt.Errorf("import token: %w", err)
	}
	return t, true, nil
}

// ImportAll imports many secrets (Import) all or none: it checks every
// one first, the store included, and refuses the lot with an
// *ImportError listing each secret that breaks a rule (the same secret
// twice for different users or scopes included). Only then does it store
// them. Storage trouble ends it early, with what it stored so far: a run
// again completes it.
func (s *Tokens) ImportAll(ctx context.Context, list []SecretImport) (ImportSummary, error) {
	var problems []ImportProblem
	first := map[string]int{} // secret → index of its first occurrence
	for i, in := range list {
		if j, dup := first[in.Secret]; dup {
			if o := list[j].Spec; o.UserID != in.Spec.UserID || !sameScopes(o.Scopes, in.Spec.Scopes) {
				problems = append(problems, ImportProblem{Index: i, Err: domain.Invalid("secret", domain.CodeConflict,
					"is also #%d's secret, for another user or other scopes", j+1)})
			}
			continue
		}
		first[in.Secret] = i
		_, _, err := s.checkImport(ctx, in.Spec, in.Secret)
		var ve *domain.ValidationError
		switch {
		case errors.As(err, &ve):
			problems = append(problems, ImportProblem{Index: i, Err: err})
		case err != nil:
			return ImportSummary{}, err
		}
	}
	if len(problems) > 0 {
		return ImportSummary{}, &ImportError{Problems: problems}
	}
	var sum ImportSummary
	for i, in := range list {
		_, created, err := s.Import(ctx, in.Spec, in.Secret)
		if err != nil {
			return sum, fmt.Errorf("import #%d: %w", i+1, err)
		}
		if created {
			sum.Imported++
		} else {
			sum.Present++
		}
	}
	return sum, nil
}

// checkImport checks a secret to import against the rules and the store:
// present says it is stored already, as t, for the same user and scopes.
func (s *Tokens) checkImport(ctx context.Context, spec TokenSpec, secret string) (t domain.Token, present bool, err error) {
	switch {
	case len(secret) < MinImportedSecretLen:
		return t, false, domain.Invalid("secret", domain.CodeOutOfRange, "must be at least %d characters", MinImportedSecretLen)
	case strings.ContainsFunc(secret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return t, false, domain.Invalid("secret", domain.CodeMalformed, "must hold no whitespace or control characters")
	case !utf8.ValidString(secret):
		return t, false, domain.Invalid("secret", domain.CodeMalformed, "must be valid UTF-8")
	}
	if err := spec.validate(); err != nil {
		return t, false, err
	}
	t, err = s.store.TokenByHash(ctx, HashSecret(secret))
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return domain.Token{}, false, nil
	case err != nil:
		return domain.Token{}, false, fmt.Errorf("import token: %w", err)
	case t.UserID != spec.UserID || !sameScopes(t.Scopes, spec.Scopes):
		return domain.Token{}, false, domain.Invalid("secret", domain.CodeConflict,
			"is already token %s's secret, for %s with scopes %s", t.ID, userName(t.UserID), joinScopes(t.Scopes))
	case !t.Active(s.clock.Now()):
		return domain.Token{}, false, domain.Invalid("secret", domain.CodeConflict,
			"is already token %s's secret, revoked or expired: a revoked secret is not brought back", t.ID)
	}
	return t, true, nil
}

// sameScopes says whether a and b hold the same scopes, in any order.
func sameScopes(a, b []domain.Scope) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func joinScopes(scopes []domain.Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

func userName(id int64) string {
	if id == 0 {
		return "no user"
	}
	return fmt.Sprintf("user %d", id)
}
