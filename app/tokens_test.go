package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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

// drfKey is a secret as a Django REST Framework client holds it.
const drfKey = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"

func TestTokenImport(t *testing.T) {
	fx := newFixture(t)
	spec := app.TokenSpec{Name: "drf", UserID: 6, Scopes: rw}
	tok, created, err := fx.tokens.Import(fx.ctx, spec, drfKey)
	if err != nil || !created {
		t.Fatalf("Import = %+v, %v, %v", tok, created, err)
	}
	if sum := sha256.Sum256([]byte(drfKey)); !bytes.Equal(tok.Hash, sum[:]) || tok.UserID != 6 || tok.Name != "drf" {
		t.Errorf("token = %+v", tok)
	}
	p, err := fx.tokens.Authenticate(fx.ctx, drfKey)
	if err != nil || p.UserID != 6 || !slices.Equal(p.Scopes, rw) || p.IsAdmin() {
		t.Fatalf("Authenticate(imported secret) = %+v, %v", p, err)
	}

	// Again, with the scopes in another order and another name: present.
	again, created, err := fx.tokens.Import(fx.ctx, app.TokenSpec{Name: "other", UserID: 6,
		Scopes: []domain.Scope{domain.ScopeWrite, domain.ScopeRead}}, drfKey)
	if err != nil || created || again.ID != tok.ID {
		t.Errorf("re-import = %+v, created %v, %v; want token %s, not created", again, created, err, tok.ID)
	}
	if ts, _ := fx.store.ListTokens(fx.ctx); len(ts) != 1 {
		t.Errorf("%d tokens stored, want 1", len(ts))
	}

	refused := []struct {
		name   string
		spec   app.TokenSpec
		secret string
		field  string
	}{
		{"another user", app.TokenSpec{UserID: 7, Scopes: rw}, drfKey, "secret"},
		{"other scopes", app.TokenSpec{UserID: 6, Scopes: []domain.Scope{domain.ScopeRead}}, drfKey, "secret"},
		{"too short", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789abcde", "secret"},
		{"a space", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789 abcdef0123", "secret"},
		{"a tab", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789\tabcdef0123", "secret"},
		{"a newline", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789abcdef0123\n", "secret"},
		{"a control character", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789\x00abcdef0123", "secret"},
		{"not UTF-8", app.TokenSpec{UserID: 6, Scopes: rw}, "0123456789\xffabcdef0123", "secret"},
		{"no scopes", app.TokenSpec{UserID: 6}, "fedcba9876543210fedcba", "scope"},
		{"no user", app.TokenSpec{Scopes: rw}, "fedcba9876543210fedcba", "user"},
		{"negative ttl", app.TokenSpec{UserID: 6, Scopes: rw, TTL: -time.Hour}, "fedcba9876543210fedcba", "ttl"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, created, err := fx.tokens.Import(fx.ctx, tc.spec, tc.secret)
			wantFields(t, err, tc.field)
			if created {
				t.Error("created")
			}
			if err != nil && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	if ts, _ := fx.store.ListTokens(fx.ctx); len(ts) != 1 {
		t.Errorf("%d tokens stored after refusals, want 1", len(ts))
	}
	// The other user's client still cannot use it; the owner still can.
	if p, err := fx.tokens.Authenticate(fx.ctx, drfKey); err != nil || p.UserID != 6 {
		t.Errorf("after refusals: %+v, %v", p, err)
	}

	// A revoked secret is not brought back by importing it again.
	if err := fx.tokens.Revoke(fx.ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = fx.tokens.Import(fx.ctx, spec, drfKey)
	wantFields(t, err, "secret")
	wantErr(t, func() error { _, err := fx.tokens.Authenticate(fx.ctx, drfKey); return err }(), domain.ErrUnauthenticated)

	// A TTL counts from the import.
	ttl, _, err := fx.tokens.Import(fx.ctx, app.TokenSpec{UserID: 8, Scopes: rw, TTL: time.Hour}, "ttl-secret-0123456789")
	if err != nil || !ttl.ExpiresAt.Equal(domain.Normalize(start).Add(time.Hour)) {
		t.Errorf("token with TTL = %+v, %v", ttl, err)
	}
}

func TestTokenImportAll(t *testing.T) {
	fx := newFixture(t)
	key := func(i int) string { return strings.Repeat(string(rune('a'+i)), 40) }
	item := func(i int, user int64, scopes ...domain.Scope) app.SecretImport {
		if len(scopes) == 0 {
			scopes = rw
		}
		return app.SecretImport{Secret: key(i), Spec: app.TokenSpec{UserID: user, Scopes: scopes}}
	}
	if _, _, err := fx.tokens.Import(fx.ctx, item(0, 1).Spec, key(0)); err != nil {
		t.Fatal(err)
	}

	// One bad item and nothing is stored; every bad one is listed.
	bad := []app.SecretImport{
		item(1, 2),
		{Secret: "short", Spec: item(2, 3).Spec}, // #2: too short
		item(0, 9),                               // #3: user 1's secret
		item(3, 4),
		item(3, 5), // #5: #4's secret for another user
		item(4, 6),
	}
	_, err := fx.tokens.ImportAll(fx.ctx, bad)
	var ie *app.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("ImportAll(bad) = %v, want an *ImportError", err)
	}
	var idx []int
	for _, p := range ie.Problems {
		idx = append(idx, p.Index)
		var ve *domain.ValidationError
		if !errors.As(p.Err, &ve) {
			t.Errorf("problem %d: %v is no validation error", p.Index, p.Err)
		}
	}
	if !slices.Equal(idx, []int{1, 2, 4}) {
		t.Errorf("refused %v, want [1 2 4]: %v", idx, err)
	}
	if strings.Contains(err.Error(), key(0)) || strings.Contains(err.Error(), key(3)) {
		t.Errorf("error shows a secret: %v", err)
	}
	if ts, _ := fx.store.ListTokens(fx.ctx); len(ts) != 1 {
		t.Errorf("%d tokens stored after a refused import, want the 1 from before", len(ts))
	}

	// A good list: the one stored before and a repeat count as present.
	good := []app.SecretImport{item(0, 1), item(1, 2), item(2, 3, domain.ScopeRead), item(1, 2)}
	sum, err := fx.tokens.ImportAll(fx.ctx, good)
	if err != nil || sum != (app.ImportSummary{Imported: 2, Present: 2}) {
		t.Fatalf("ImportAll(good) = %+v, %v; want imported 2, present 2", sum, err)
	}
	for i, in := range good {
		p, err := fx.tokens.Authenticate(fx.ctx, in.Secret)
		if err != nil || p.UserID != in.Spec.UserID || !slices.Equal(p.Scopes, in.Spec.Scopes) {
			t.Errorf("#%d: Authenticate = %+v, %v; want user %d, %v", i, p, err, in.Spec.UserID, in.Spec.Scopes)
		}
	}
	// Run again: nothing new.
	if sum, err := fx.tokens.ImportAll(fx.ctx, good); err != nil || sum != (app.ImportSummary{Present: 4}) {
		t.Errorf("re-run = %+v, %v; want present 4", sum, err)
	}
	if ts, _ := fx.store.ListTokens(fx.ctx); len(ts) != 3 {
		t.Errorf("%d tokens stored, want 3", len(ts))
	}
}
