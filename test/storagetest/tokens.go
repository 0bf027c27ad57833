package storagetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// testTokenAfterUnknown: a token created right after lookups of its hash
// found nothing is found at once, and its revocation is seen at once: a
// store that caches lookups, unknown hashes included, forgets them when
// it creates or revokes a token.
func testTokenAfterUnknown(t *testing.T, s ports.Store) {
	ctx := t.Context()
	h := bytes.Repeat([]byte{0xab}, 32)
	// Looked up for a while first, so that a cache that starts in the
	// background (PostgreSQL's listener) has had time to take part.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got, err := s.TokenByHash(ctx, h); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("TokenByHash(never created) = %+v, %v; want ErrNotFound", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok := domain.Token{ID: "created-late", Name: "late", UserID: 5, Scopes: []domain.Scope{domain.ScopeRead},
		Hash: h, CreatedAt: at(0)}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	got, err := s.TokenByHash(ctx, h)
	if err != nil || got.ID != tok.ID {
		t.Fatalf("TokenByHash right after CreateToken = %+v, %v; want token %s", got, err, tok.ID)
	}
	if err := s.RevokeToken(ctx, tok.ID, at(time.Minute)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if got, err := s.TokenByHash(ctx, h); err != nil || got.RevokedAt.IsZero() {
		t.Fatalf("TokenByHash right after RevokeToken = %+v, %v; want it revoked", got, err)
	}
}
