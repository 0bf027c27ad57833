package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

const tokenCols = `id, name, user_id, scopes, hash, created_at, expires_at, revoked_at`

type tokenRow struct {
	ID        string         `db:"id"`
	Name      string         `db:"name"`
	UserID    int64          `db:"user_id"`
	Scopes    pq.StringArray `db:"scopes"`
	Hash      []byte         `db:"hash"`
	CreatedAt time.Time      `db:"created_at"`
	ExpiresAt sql.NullTime   `db:"expires_at"`
	RevokedAt sql.NullTime   `db:"revoked_at"`
}

func (r tokenRow) token() domain.Token {
	t := domain.Token{
		ID:        r.ID,
		Name:      r.Name,
		UserID:    r.UserID,
		Hash:      r.Hash,
		CreatedAt: r.CreatedAt.UTC(),
	}
	if len(r.Scopes) > 0 {
		t.Scopes = make([]domain.Scope, len(r.Scopes))
		for i, s := range r.Scopes {
			t.Scopes[i] = domain.Scope(s)
		}
	}
	if r.ExpiresAt.Valid {
		t.ExpiresAt = r.ExpiresAt.Time.UTC()
	}
	if r.RevokedAt.Valid {
		t.RevokedAt = r.RevokedAt.Time.UTC()
	}
	return t
}

func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: domain.Normalize(t), Valid: true}
}

// CreateToken implements ports.Tokens.
func (s *Store) CreateToken(ctx context.Context, t domain.Token) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	scopes := make(pq.StringArray, len(t.Scopes))
	for i, sc := range t.Scopes {
		scopes[i] = string(sc)
	}
	// One statement: the insert, and the notification that empties every
	// replica's token cache (its negative entries: the hash may have been
	// looked up, unknown, before) when it commits.
	_, err := s.db.ExecContext(ctx, `
		WITH ins AS (
		    INSERT INTO api_tokens (`+tokenCols+`)
		    VALUES ($1::text, $2::text, $3::bigint, $4::text[], $5::bytea, $6::timestamptz, $7::timestamptz, $8::timestamptz)
		    RETURNING 1
		)
		SELECT notified.* FROM ins, LATERAL (`+notifyTokens+`) notified`,
		t.ID, t.Name, t.UserID, scopes, t.Hash, domain.Normalize(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.RevokedAt))
	if err != nil {
		if e := pq.As(err, "23505"); e != nil {
			return fmt.Errorf("postgres: create token: a token with this id or secret exists: %w", err)
		}
		return fmt.Errorf("postgres: create token: %w", wrap(err))
	}
	// This replica need not wait for its own notification.
	s.tokens.invalidate()
	return nil
}

// TokenByHash implements ports.Tokens, through the token cache (see
// tokencache.go).
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	if t, absent, ok := s.tokens.get(hash); ok {
		if absent {
			return domain.Token{}, domain.ErrNotFound
		}
		return t, nil
	}
	gen := s.tokens.generation()
	ctx, cancel := s.op(ctx)
	defer cancel()
	var r tokenRow
	err := s.db.GetContext(ctx, &r, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = $1::bytea`, hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.tokens.putMissing(hash, gen)
		return domain.Token{}, domain.ErrNotFound
	case err != nil:
		return domain.Token{}, fmt.Errorf("postgres: token by hash: %w", wrap(err))
	}
	t := r.token()
	s.tokens.put(hash, t, gen)
	return t, nil
}

// ListTokens implements ports.Tokens: every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]domain.Token, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var rs []tokenRow
	if err := s.db.SelectContext(ctx, &rs, `SELECT `+tokenCols+` FROM api_tokens ORDER BY created_at, seq`); err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", wrap(err))
	}
	out := make([]domain.Token, len(rs))
	for i, r := range rs {
		out[i] = r.token()
	}
	return out, nil
}

// RevokeToken implements ports.Tokens; revoking twice keeps the first time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	// One statement: the update, and the notification that empties every
	// replica's token cache when it commits.
	var n int
	err := s.db.GetContext(ctx, &n, `
		WITH u AS (
		    UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $2::timestamptz) WHERE id = $1::text
		    RETURNING 1
		)
		SELECT count(*) FROM u, LATERAL (`+notifyTokens+`) notified`,
		id, domain.Normalize(at))
	if err != nil {
		return fmt.Errorf("postgres: revoke token: %w", wrap(err))
	}
	if n == 0 {
		return fmt.Errorf("%w: token %s", domain.ErrNotFound, id)
	}
	// This replica need not wait for its own notification.
	s.tokens.invalidate()
	return nil
}
