package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

func TestTokenCreate(t *testing.T) {
	fx := newFixture(t)
	spec := app.TokenSpec{Name: "ci", UserID: 42, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}, TTL: 720 * time.Hour}
	secret, tok, err := fx.tokens.Create(fx.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, app.TokenPrefix) || app.TokenPrefix != "adt_" {
		t.Errorf("secret %q lacks the adt_ prefix", secret)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, app.TokenPrefix))
	if err != nil || len(raw) < 16 {
		t.Errorf("secret carries %d random bytes (%v), want at least 16", len(raw), err)
	}
	created := domain.Normalize(start)
	if tok.ID == "" || tok.Name != "ci" || tok.UserID != 42 || !slices.Equal(tok.Scopes, spec.Scopes) ||
		!tok.CreatedAt.Equal(created) || !tok.ExpiresAt.Equal(created.Add(720*time.Hour)) || !tok.RevokedAt.IsZero() {
		t.Errorf("token = %+v", tok)
	}
	sum := sha256.Sum256([]byte(secret))
	if !bytes.Equal(tok.Hash, sum[:]) || !bytes.Equal(app.HashSecret(secret), sum[:]) {
		t.Errorf("hash = %x, want SHA-256 of the secret", tok.Hash)
	}

	stored, err := fx.store.ListTokens(fx.ctx)
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored tokens = %+v, %v", stored, err)
	}
	s := stored[0]
	if s.ID != tok.ID || !bytes.Equal(s.Hash, sum[:]) {
		t.Errorf("stored %+v", s)
	}
	// Nothing stored holds the secret or its random part.
	for _, f := range []string{s.ID, s.Name, string(s.Hash)} {
		if strings.Contains(f, secret) || strings.Contains(f, strings.TrimPrefix(secret, app.TokenPrefix)) {
			t.Errorf("stored token holds the secret: %+v", s)
		}
	}

	secret2, tok2, err := fx.tokens.Create(fx.ctx, spec)
	if err != nil || secret2 == secret || tok2.ID == tok.ID {
		t.Errorf("second token reuses the secret or id: %v", err)
	}
	// No TTL: never expires.
	_, forever, err := fx.tokens.Create(fx.ctx, app.TokenSpec{UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}})
	if err != nil || !forever.ExpiresAt.IsZero() {
		t.Errorf("token without TTL = %+v, %v", forever, err)
	}
	// An admin token needs no user.
	if _, a, err := fx.tokens.Create(fx.ctx, app.TokenSpec{Scopes: []domain.Scope{domain.ScopeAdmin}}); err != nil || a.UserID != 0 {
		t.Errorf("admin token = %+v, %v", a, err)
	}
}

func TestTokenCreateRejects(t *testing.T) {
	tests := []struct {
		name  string
		spec  app.TokenSpec
		field string
	}{
		{"no scopes", app.TokenSpec{UserID: 1}, "scope"},
		{"empty scopes", app.TokenSpec{UserID: 1, Scopes: []domain.Scope{}}, "scope"},
		{"non-admin without user", app.TokenSpec{Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}, "user"},
		{"negative user", app.TokenSpec{UserID: -1, Scopes: []domain.Scope{domain.ScopeRead}}, "user"},
		{"admin with negative user", app.TokenSpec{UserID: -1, Scopes: []domain.Scope{domain.ScopeAdmin}}, "user"},
		{"negative TTL", app.TokenSpec{UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}, TTL: -time.Second}, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			secret, tok, err := fx.tokens.Create(fx.ctx, tt.spec)
			wantFields(t, err, tt.field)
			if secret != "" || tok.ID != "" {
				t.Errorf("a rejected Create returned secret %q, token %+v", secret, tok)
			}
			if ts, _ := fx.store.ListTokens(fx.ctx); len(ts) != 0 {
				t.Errorf("a rejected Create stored %d tokens", len(ts))
			}
		})
	}
}

func TestTokenAuthenticate(t *testing.T) {
	fx := newFixture(t)
	scopes := []domain.Scope{domain.ScopeRead}
	secret, tok, err := fx.tokens.Create(fx.ctx, app.TokenSpec{Name: "reader", UserID: 5, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.tokens.Authenticate(fx.ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "token:"+tok.ID || p.UserID != 5 || !slices.Equal(p.Scopes, scopes) {
		t.Errorf("principal = %+v", p)
	}
	if strings.Contains(p.Name, secret) {
		t.Error("the principal's name holds the secret")
	}

	for _, bad := range []string{"", "adt_unknown", secret + "x", strings.TrimPrefix(secret, app.TokenPrefix), string(tok.Hash)} {
		p, err := fx.tokens.Authenticate(fx.ctx, bad)
		wantErr(t, err, domain.ErrUnauthenticated)
		if p.Name != "" || p.Scopes != nil {
			t.Errorf("Authenticate(%q) returned %+v", bad, p)
		}
	}

	// Expiry follows the clock.
	fx.clock.Advance(time.Hour - time.Microsecond)
	if _, err := fx.tokens.Authenticate(fx.ctx, secret); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	fx.clock.Advance(time.Microsecond)
	_, err = fx.tokens.Authenticate(fx.ctx, secret)
	wantErr(t, err, domain.ErrUnauthenticated)
}

func TestTokenRevokeAndList(t *testing.T) {
	fx := newFixture(t)
	s1, t1, err := fx.tokens.Create(fx.ctx, app.TokenSpec{Name: "one", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	fx.clock.Advance(time.Second)
	s2, t2, err := fx.tokens.Create(fx.ctx, app.TokenSpec{Name: "two", Scopes: []domain.Scope{domain.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}

	revokedAt := domain.Normalize(fx.clock.Advance(time.Minute))
	if err := fx.tokens.Revoke(fx.ctx, t1.ID); err != nil {
		t.Fatal(err)
	}
	_, err = fx.tokens.Authenticate(fx.ctx, s1)
	wantErr(t, err, domain.ErrUnauthenticated)
	if _, err := fx.tokens.Authenticate(fx.ctx, s2); err != nil {
		t.Errorf("revoking one token affected another: %v", err)
	}
	// Revoking again keeps the first time.
	fx.clock.Advance(time.Hour)
	if err := fx.tokens.Revoke(fx.ctx, t1.ID); err != nil {
		t.Errorf("second revoke: %v", err)
	}

	err = fx.tokens.Revoke(fx.ctx, "no-such-token")
	wantErr(t, err, domain.ErrNotFound)

	ts, err := fx.tokens.List(fx.ctx)
	if err != nil || len(ts) != 2 {
		t.Fatalf("List = %+v, %v", ts, err)
	}
	if ts[0].ID != t1.ID || ts[1].ID != t2.ID {
		t.Errorf("List order = %s, %s; want oldest first", ts[0].ID, ts[1].ID)
	}
	if !ts[0].RevokedAt.Equal(revokedAt) || !ts[1].RevokedAt.IsZero() {
		t.Errorf("RevokedAt = %v / %v, want %v / zero", ts[0].RevokedAt, ts[1].RevokedAt, revokedAt)
	}
	for _, tok := range ts {
		for _, s := range []string{s1, s2} {
			if strings.Contains(tok.ID+tok.Name+string(tok.Hash), s) {
				t.Errorf("listed token %s holds a secret", tok.ID)
			}
		}
	}
}

func TestBootstrapGeneratesOnce(t *testing.T) {
	fx := newFixture(t)
	secret, created, err := fx.tokens.Bootstrap(fx.ctx, "")
	if err != nil || !created || !strings.HasPrefix(secret, app.TokenPrefix) {
		t.Fatalf("Bootstrap = %q, %v, %v", secret, created, err)
	}
	p, err := fx.tokens.Authenticate(fx.ctx, secret)
	if err != nil || !p.IsAdmin() || p.UserID != 0 {
		t.Fatalf("bootstrap principal = %+v, %v; want an admin", p, err)
	}
	again, created, err := fx.tokens.Bootstrap(fx.ctx, "")
	if err != nil || created || again != "" {
		t.Errorf("second Bootstrap = %q, %v, %v; want nothing", again, created, err)
	}
	if ts, _ := fx.tokens.List(fx.ctx); len(ts) != 1 || ts[0].Name != "bootstrap-admin" {
		t.Errorf("tokens = %+v, want the one bootstrap token", ts)
	}
}

func TestBootstrapGivenSecret(t *testing.T) {
	given := "s3cr3t-" + strings.Repeat("x", app.MinSecretLen-7) // exactly MinSecretLen
	tests := []struct {
		name  string
		given string
		ok    bool
	}{
		{"long enough", given, true},
		{"one short", given[:app.MinSecretLen-1], false},
		{"with a space", given[:10] + " " + given[10:], false},
		{"with a newline", given + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			secret, created, err := fx.tokens.Bootstrap(fx.ctx, tt.given)
			ts, _ := fx.tokens.List(fx.ctx)
			if !tt.ok {
				if err == nil || created || secret != "" || len(ts) != 0 {
					t.Fatalf("Bootstrap(%q) = %q, %v, %v with %d tokens; want an error and nothing stored", tt.given, secret, created, err, len(ts))
				}
				return
			}
			if err != nil || !created || secret != tt.given || len(ts) != 1 {
				t.Fatalf("Bootstrap(%q) = %q, %v, %v", tt.given, secret, created, err)
			}
			if !bytes.Equal(ts[0].Hash, app.HashSecret(tt.given)) {
				t.Error("the given secret is not what is stored (hashed)")
			}
			p, err := fx.tokens.Authenticate(fx.ctx, tt.given)
			if err != nil || !p.IsAdmin() {
				t.Errorf("Authenticate(given) = %+v, %v", p, err)
			}
		})
	}
}

func TestBootstrapDoesNothingWhenTokensExist(t *testing.T) {
	fx := newFixture(t)
	if _, tok, err := fx.tokens.Create(fx.ctx, app.TokenSpec{UserID: 3, Scopes: []domain.Scope{domain.ScopeRead}}); err != nil {
		t.Fatal(err)
	} else if err := fx.tokens.Revoke(fx.ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	for _, given := range []string{"", strings.Repeat("z", 40), "short"} {
		secret, created, err := fx.tokens.Bootstrap(fx.ctx, given)
		if err != nil || created || secret != "" {
			t.Errorf("Bootstrap(%q) with a token present = %q, %v, %v", given, secret, created, err)
		}
	}
	if ts, _ := fx.tokens.List(fx.ctx); len(ts) != 1 {
		t.Errorf("%d tokens, want 1", len(ts))
	}
}

// Replicas that start together on an empty store race to bootstrap; the
// fixed bootstrap id makes exactly one of them create the admin token and
// the others find nothing to do.
func TestBootstrapConcurrentReplicas(t *testing.T) {
	fx := newFixture(t)
	const replicas = 8
	var wg sync.WaitGroup
	created := make(chan string, replicas)
	errs := make(chan error, replicas)
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret, ok, err := fx.tokens.Bootstrap(fx.ctx, "")
			if err != nil {
				errs <- err
			}
			if ok {
				created <- secret
			}
		}()
	}
	wg.Wait()
	close(created)
	close(errs)
	for err := range errs {
		t.Errorf("Bootstrap: %v", err)
	}
	var secrets []string
	for s := range created {
		secrets = append(secrets, s)
	}
	ts, _ := fx.tokens.List(fx.ctx)
	if len(secrets) != 1 || len(ts) != 1 || ts[0].ID != app.BootstrapTokenID {
		t.Fatalf("%d replicas created a token, store holds %+v; want exactly one", len(secrets), ts)
	}
	if _, err := fx.tokens.Authenticate(fx.ctx, secrets[0]); err != nil {
		t.Fatalf("the printed bootstrap token does not authenticate: %v", err)
	}
}
