// Package ports declares the interfaces the activityd core needs from the
// outside world (storage, clock). Adapters implement them; the app package
// depends only on them.
package ports

import (
	"context"
	"time"

	"github.com/activityd/activityd/domain"
)

// Events stores events and their status history. Implementations return
// domain.ErrNotFound, domain.ErrStatusConflict and errors matching
// domain.ErrUnavailable when the backing service cannot be reached.
type Events interface {
	// Create stores e with its initial history entry ("" → PENDING at
	// e.RecordedAt, by). If an
	// event with e.ID already exists it stores nothing and returns the stored
	// event with created == false; concurrent creates of one id store one row.
	Create(ctx context.Context, e domain.Event, by string) (stored domain.Event, created bool, err error)
	// CreateMany is Create for many events in as few round trips as the
	// backend allows. Results line up with es. An error fails the whole call
	// and stores nothing.
	CreateMany(ctx context.Context, es []domain.Event, by string) ([]Created, error)
	// Get returns one event.
	Get(ctx context.Context, id domain.ID) (domain.Event, error)
	// History returns the event's status transitions, oldest first.
	History(ctx context.Context, id domain.ID) ([]domain.Transition, error)
	// List returns one page of the events f selects, in f's order, ties
	// broken by id, continuing after f.After.
	List(ctx context.Context, f domain.Filter) (domain.Page, error)
	// SetStatus moves event id from status from to status to if, and only
	// if, its status is still from (compare-and-set), recording the
	// transition atomically with it. It returns ErrStatusConflict when the
	// status was no longer from, ErrNotFound when there is no such event.
	SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error)
	// CountWindow counts the events whose recorded_at lies in [start, end),
	// per user and per action, ordered by user id. Users without events in
	// the window are absent.
	CountWindow(ctx context.Context, start, end time.Time) ([]domain.UserCount, error)
}

// Created is the outcome of storing one event of a batch.
type Created struct {
	Event   domain.Event // the stored event (the earlier one when not created)
	Created bool         // false: an event with this id already existed
}

// Tokens stores API tokens (hashes only, never secrets).
type Tokens interface {
	// CreateToken stores t; a token with the same id or hash is an error.
	CreateToken(ctx context.Context, t domain.Token) error
	// TokenByHash returns the token whose secret hashes to hash, or
	// domain.ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (domain.Token, error)
	// ListTokens returns every token, revoked and expired ones included,
	// oldest first.
	ListTokens(ctx context.Context) ([]domain.Token, error)
	// RevokeToken marks the token revoked at at; domain.ErrNotFound if
	// there is no such token. Revoking twice keeps the first time.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Store is everything a storage adapter provides.
type Store interface {
	Events
	Tokens
	// Migrate brings the schema up to date; safe to call on every start and
	// from several processes at once.
	Migrate(ctx context.Context) error
	// Ping reports whether the backing service is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Maintainer is implemented by stores that need periodic upkeep, such as
// time partitions made ahead of the writes that need them. The service
// calls it at start and then regularly; stores without upkeep don't
// implement it (the way optional interfaces work in database/sql/driver).
type Maintainer interface {
	// Maintain prepares the store for writes around now and, when
	// retention > 0, drops data recorded before now - retention (at the
	// store's granularity: whole months for PostgreSQL). It returns the
	// number of units dropped, so callers can invalidate what they cached.
	// It must be safe to run from several replicas at once.
	Maintain(ctx context.Context, now time.Time, retention time.Duration) (dropped int, err error)
}

// Clock tells the time; tests substitute a fake one.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// SystemClock is the real clock.
var SystemClock Clock = ClockFunc(time.Now)
