package postgres

import (
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
	// Revoked without a notification, then the listener's connection cut.
	if _, err := b.db.ExecContext(t.Context(), `UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, tok, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !b.tokens.listening.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not reconnect within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
