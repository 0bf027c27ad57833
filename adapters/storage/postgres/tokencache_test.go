package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

func TestListenerDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable&statement_cache=off&search_path=x",
			"postgres://u@h:5432/db?application_name=activityd-listener&search_path=x&sslmode=disable"},
		{"postgresql://u@h/db?application_name=mine", "postgresql://u@h/db?application_name=mine"},
		{"host=h dbname=db statement_cache=off sslmode=disable", "host=h dbname=db sslmode=disable application_name=activityd-listener"},
		{"host=h application_name=mine", "host=h application_name=mine"},
	} {
		if got := listenerDSN(tc.in); got != tc.want {
			t.Errorf("listenerDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// tokenStores returns two stores on one fresh schema (two replicas) and a
// token created through the first.
func tokenStores(t *testing.T) (a, b *Store, tok domain.Token) {
	t.Helper()
	url, _ := testenv.PostgresSchema(t)
	a, b = openStore(t, url, testPool), openStore(t, url, testPool)
	if err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok = domain.Token{ID: "tok1", Name: "ci", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead},
		Hash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: time.Now()}
	if err := a.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return a, b, tok
}

// cachedLookup looks tok up through s until s's listener listens, then
// once more: the token is then in s's cache.
func cachedLookup(t *testing.T, s *Store, tok domain.Token) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.TokenByHash(t.Context(), tok.Hash); err != nil {
			t.Fatal(err)
		}
		if s.tokens.listening.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the token cache's listener did not connect within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.TokenByHash(t.Context(), tok.Hash); err != nil {
		t.Fatal(err)
	}
}

// waitRevoked polls s until it reports tok revoked; it returns how long
// that took, failing after within.
func waitRevoked(t *testing.T, s *Store, tok domain.Token, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		got, err := s.TokenByHash(t.Context(), tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.IsZero() {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("the revocation was not seen within %v", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTokenCacheAcrossReplicas: lookups are served from the cache (a
// change made behind the store's back is not seen), and a revocation
// through one replica empties the other's cache as it commits.
func TestTokenCacheAcrossReplicas(t *testing.T) {
	a, b, tok := tokenStores(t)
	cachedLookup(t, b, tok)
	if _, err := b.db.ExecContext(t.Context(), `UPDATE api_tokens SET name = 'renamed' WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := b.TokenByHash(t.Context(), tok.Hash); err != nil || got.Name != "ci" {
		t.Fatalf("lookup after a silent change: %q, %v; want the cached %q", got.Name, err, "ci")
	}
	if err := a.RevokeToken(t.Context(), tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	took := waitRevoked(t, b, tok, 2*time.Second)
	t.Logf("replica b saw the revocation %v after it committed", took)
	if err := a.RevokeToken(t.Context(), "no-such-token", time.Now()); err == nil {
		t.Error("revoking an unknown token succeeded")
	}
}

// TestTokenCacheListenerLost: while the listener's connection is down a
// notification can be missed, so the cache is emptied and bypassed: a
// revocation made meanwhile is seen at once, not after an entry's max age.
func TestTokenCacheListenerLost(t *testing.T) {
	_, b, tok := tokenStores(t)
	// A name of its own, to find this listener's server process among
	// those of the tests running alongside.
	name := fmt.Sprintf("%s-%d", listenerName, time.Now().UnixNano())
	b.tokens.dsn = strings.Replace(b.tokens.dsn, "application_name="+listenerName, "application_name="+name, 1)
	cachedLookup(t, b, tok)
	var pid int
	if err := b.db.GetContext(t.Context(), &pid, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, name); err != nil {
		t.Fatalf("the listener's connection (%s): %v", name, err)
	}
	// Revoked without a notification, and a token created without one
	// after its hash was cached as unknown; then the listener's connection
	// cut.
	if _, err := b.db.ExecContext(t.Context(), `UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}
	unknown := []byte("ffeeddccbbaa99887766554433221100")
	wantUnknown(t, b, unknown, "a hash no token has")
	if _, err := b.db.ExecContext(t.Context(), `INSERT INTO api_tokens (id, name, user_id, scopes, hash, created_at)
		VALUES ('silent', '', 7, '{events:read}', $1, now())`, unknown); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, tok, 5*time.Second)
	waitFound(t, b, unknown, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !b.tokens.listening.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not reconnect within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFound polls s until it finds hash; it fails after within.
func waitFound(t *testing.T, s *Store, hash []byte, within time.Duration) domain.Token {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := s.TokenByHash(t.Context(), hash)
		if err == nil {
			return got
		}
		if !errors.Is(err, domain.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token was still unknown %v after its creation committed", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantUnknown fails unless s says no token has hash.
func wantUnknown(t *testing.T, s *Store, hash []byte, why string) {
	t.Helper()
	if got, err := s.TokenByHash(t.Context(), hash); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("%s: lookup = %+v, %v; want ErrNotFound", why, got, err)
	}
}

// TestTokenNegativeCacheAcrossReplicas: an unknown hash is answered from
// memory (a row inserted behind the store's back is not seen), and a
// creation of that token through another replica empties the negative
// cache as it commits, so the lookup succeeds; revocation still works.
func TestTokenNegativeCacheAcrossReplicas(t *testing.T) {
	a, b, tok := tokenStores(t)
	cachedLookup(t, b, tok) // b's listener listens
	secret := []byte("fedcba9876543210fedcba9876543210")
	wantUnknown(t, b, secret, "a hash no token has")
	// Inserted without a notification: b keeps answering from memory.
	if _, err := a.db.ExecContext(t.Context(), `INSERT INTO api_tokens (id, name, user_id, scopes, hash, created_at)
		VALUES ('silent', '', 7, '{events:read}', $1, now())`, secret); err != nil {
		t.Fatal(err)
	}
	wantUnknown(t, b, secret, "a silently inserted row (the negative cache must answer)")
	if _, err := a.db.ExecContext(t.Context(), `DELETE FROM api_tokens WHERE id = 'silent'`); err != nil {
		t.Fatal(err)
	}

	created := domain.Token{ID: "tok2", Name: "late", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead},
		Hash: secret, CreatedAt: time.Now()}
	if err := a.CreateToken(t.Context(), created); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if got := waitFound(t, b, secret, 5*time.Second); got.ID != created.ID {
		t.Fatalf("found token %q, want %q", got.ID, created.ID)
	}
	t.Logf("replica b found the created token %v after it committed", time.Since(began))

	if err := a.RevokeToken(t.Context(), created.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, created, 5*time.Second)
}

// TestTokenNegativeCacheSameStore: a token created through the store that
// just answered "unknown" for its hash is found at once, without waiting
// for the notification.
func TestTokenNegativeCacheSameStore(t *testing.T) {
	_, b, tok := tokenStores(t)
	cachedLookup(t, b, tok)
	secret := []byte("00112233445566778899aabbccddeeff")
	wantUnknown(t, b, secret, "a hash no token has")
	wantUnknown(t, b, secret, "again, from memory")
	if err := b.CreateToken(t.Context(), domain.Token{ID: "tok3", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead},
		Hash: secret, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TokenByHash(t.Context(), secret); err != nil {
		t.Fatalf("lookup right after the creation: %v", err)
	}
}

// TestTokenNegativeCacheBounded: a flood of unknown secrets keeps the
// negative cache within its bound and leaves the known tokens cached.
func TestTokenNegativeCacheBounded(t *testing.T) {
	_, b, tok := tokenStores(t)
	// Notification channels are per database: a token created by a test
	// of another package empties this cache too. Try again when that is
	// what happened; a flood that evicts the known token fails every try.
	for attempt := range 5 {
		cachedLookup(t, b, tok)
		for i := range tokenCacheMaxMisses + 500 {
			wantUnknown(t, b, fmt.Appendf(nil, "unknown-%027d", i), "a random secret")
		}
		known, unknown := b.tokens.sizes()
		if unknown > tokenCacheMaxMisses {
			t.Fatalf("%d unknown hashes cached after %d lookups; want at most %d", unknown, tokenCacheMaxMisses+500, tokenCacheMaxMisses)
		}
		if known == 1 && unknown > 0 {
			return
		}
		t.Logf("attempt %d: %d known, %d unknown cached after the flood (emptied by another test's notification?)", attempt, known, unknown)
	}
	t.Fatal("the known token never survived a flood of unknown lookups")
}
