package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/activityd/activityd/domain"
)

type tokenRow struct {
	ID        string        `db:"id"`
	Name      string        `db:"name"`
	UserID    int64         `db:"user_id"`
	Scopes    string        `db:"scopes"`
	Hash      []byte        `db:"hash"`
	CreatedAt int64         `db:"created_at"`
	ExpiresAt sql.NullInt64 `db:"expires_at"`
	RevokedAt sql.NullInt64 `db:"revoked_at"`
}

const tokenColumns = `id, name, user_id, scopes, hash, created_at, expires_at, revoked_at`

func (r tokenRow) token() domain.Token {
	t := domain.Token{ID: r.ID, Name: r.Name, UserID: r.UserID, Hash: r.Hash, CreatedAt: fromMicros(r.CreatedAt)}
	for _, sc := range strings.Fields(r.Scopes) {
		t.Scopes = append(t.Scopes, domain.Scope(sc))
	}
	if r.ExpiresAt.Valid {
		t.ExpiresAt = fromMicros(r.ExpiresAt.Int64)
	}
	if r.RevokedAt.Valid {
		t.RevokedAt = fromMicros(r.RevokedAt.Int64)
	}
	return t
}

// optionalTime stores the zero time as NULL.
func optionalTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

// CreateToken implements ports.Tokens.
func (s *Store) CreateToken(ctx context.Context, t domain.Token) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	scopes := make([]string, len(t.Scopes))
	for i, sc := range t.Scopes {
		scopes[i] = string(sc)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.UserID, strings.Join(scopes, " "), t.Hash, micros(t.CreatedAt),
		optionalTime(t.ExpiresAt), optionalTime(t.RevokedAt))
	if err != nil {
		return mapErr("create token "+t.ID, err)
	}
	return nil
}

// TokenByHash implements ports.Tokens.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var r tokenRow
	err := s.r.GetContext(ctx, &r, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Token{}, fmt.Errorf("%w: token", domain.ErrNotFound)
	}
	if err != nil {
		return domain.Token{}, mapErr("token by hash", err)
	}
	return r.token(), nil
}

// ListTokens implements ports.Tokens: oldest first, ties in the order they
// were stored.
func (s *Store) ListTokens(ctx context.Context) ([]domain.Token, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []tokenRow
	if err := s.r.SelectContext(ctx, &rows, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, rowid`); err != nil {
		return nil, mapErr("list tokens", err)
	}
	out := make([]domain.Token, len(rows))
	for i, r := range rows {
		out[i] = r.token()
	}
	return out, nil
}

// RevokeToken implements ports.Tokens; a second revocation keeps the first
// time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return mapErr("revoke token "+id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr("revoke token "+id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: token %s", domain.ErrNotFound, id)
	}
	return nil
}
