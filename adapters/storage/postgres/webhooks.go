package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var _ ports.Webhooks = (*Store)(nil)

const subscriptionCols = `id, url, filter_actions, filter_users, filter_kinds, secrets, created_at, created_by, version,
	position, pending, failures, paused, last_error, next_try`

type subscriptionRow struct {
	ID        string         `db:"id"`
	URL       string         `db:"url"`
	Actions   pq.StringArray `db:"filter_actions"`
	Users     pq.Int64Array  `db:"filter_users"`
	Kinds     pq.StringArray `db:"filter_kinds"`
	Secrets   []byte         `db:"secrets"`
	CreatedAt time.Time      `db:"created_at"`
	CreatedBy string         `db:"created_by"`
	Version   int64          `db:"version"`
	Position  int64          `db:"position"`
	Pending   int64          `db:"pending"`
	Failures  int64          `db:"failures"`
	Paused    bool           `db:"paused"`
	LastError string         `db:"last_error"`
	NextTry   sql.NullTime   `db:"next_try"`
}

func (r subscriptionRow) subscription() (domain.Subscription, error) {
	s := domain.Subscription{
		ID: r.ID, URL: r.URL, CreatedAt: r.CreatedAt.UTC(), CreatedBy: r.CreatedBy, Version: r.Version,
		State: domain.DeliveryState{Position: r.Position, Pending: r.Pending, Failures: int(r.Failures), Paused: r.Paused,
			LastError: r.LastError},
	}
	if r.NextTry.Valid {
		s.State.NextTry = r.NextTry.Time.UTC()
	}
	// Empty lists are nil, as in every store.
	for _, a := range r.Actions {
		s.Filter.Actions = append(s.Filter.Actions, domain.Action(a))
	}
	if len(r.Users) > 0 {
		s.Filter.Users = []int64(r.Users)
	}
	for _, k := range r.Kinds {
		s.Filter.Kinds = append(s.Filter.Kinds, domain.ChangeKind(k))
	}
	secrets, err := storage.DecodeSecrets(r.Secrets)
	if err != nil {
		return s, fmt.Errorf("webhook subscription %s: %w", r.ID, err)
	}
	s.Secrets = secrets
	return s, nil
}

// subscriptionArgs are the stored forms of s's lists: the filter's three
// and the secrets (jsonb text).
func subscriptionArgs(s domain.Subscription) (actions pq.StringArray, users pq.Int64Array, kinds pq.StringArray, secrets string, err error) {
	actions, users, kinds = pq.StringArray{}, pq.Int64Array{}, pq.StringArray{}
	for _, a := range s.Filter.Actions {
		actions = append(actions, string(a))
	}
	users = append(users, s.Filter.Users...)
	for _, k := range s.Filter.Kinds {
		kinds = append(kinds, string(k))
	}
	secrets, err = storage.EncodeSecrets(s.Secrets)
	return actions, users, kinds, secrets, err
}

// CreateSubscription implements ports.Webhooks.
func (s *Store) CreateSubscription(ctx context.Context, sub domain.Subscription) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	actions, users, kinds, secrets, err := subscriptionArgs(sub)
	if err != nil {
		return fmt.Errorf("postgres: create webhook subscription %s: %w", sub.ID, err)
	}
	st := sub.State
	_, err = s.db.ExecContext(ctx, `INSERT INTO webhook_subscriptions (`+subscriptionCols+`)
		VALUES ($1::text, $2::text, $3::text[], $4::bigint[], $5::text[], $6::jsonb, $7::timestamptz, $8::text, 1,
		        $9::bigint, $10::bigint, $11::int, $12::boolean, $13::text, $14::timestamptz)`,
		sub.ID, sub.URL, actions, users, kinds, secrets, domain.Normalize(sub.CreatedAt), sub.CreatedBy,
		st.Position, st.Pending, st.Failures, st.Paused, st.LastError, nullTime(st.NextTry))
	if err != nil {
		if e := pq.As(err, "23505"); e != nil {
			return fmt.Errorf("postgres: create webhook subscription %s: the id exists: %w", sub.ID, err)
		}
		return fmt.Errorf("postgres: create webhook subscription %s: %w", sub.ID, wrap(err))
	}
	return nil
}

// Subscription implements ports.Webhooks.
func (s *Store) Subscription(ctx context.Context, id string) (domain.Subscription, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var r subscriptionRow
	err := s.db.GetContext(ctx, &r, `SELECT `+subscriptionCols+` FROM webhook_subscriptions WHERE id = $1::text`, id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Subscription{}, fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
	case err != nil:
		return domain.Subscription{}, fmt.Errorf("postgres: webhook subscription %s: %w", id, wrap(err))
	}
	sub, err := r.subscription()
	if err != nil {
		return domain.Subscription{}, fmt.Errorf("postgres: %w", err)
	}
	return sub, nil
}

// Subscriptions implements ports.Webhooks: oldest first, ties in the order
// they were stored.
func (s *Store) Subscriptions(ctx context.Context) ([]domain.Subscription, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var rs []subscriptionRow
	if err := s.db.SelectContext(ctx, &rs, `SELECT `+subscriptionCols+` FROM webhook_subscriptions ORDER BY created_at, seq`); err != nil {
		return nil, fmt.Errorf("postgres: list webhook subscriptions: %w", wrap(err))
	}
	out := make([]domain.Subscription, len(rs))
	for i, r := range rs {
		var err error
		if out[i], err = r.subscription(); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	return out, nil
}

// cas runs set, a compare-and-set UPDATE of subscription $1 at version $2
// (its other parameters from $3 on), in one statement that also tells a
// missing subscription from a moved-on version. A writer that waited for
// the row lock re-checks the version on the row it finally gets, so of
// concurrent writers at one version exactly one wins.
func (s *Store) cas(ctx context.Context, op, id string, version int64, set string, args ...any) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var updated, exists bool
	err := s.db.QueryRowContext(ctx, `
		WITH u AS (
		    UPDATE webhook_subscriptions SET `+set+`, version = version + 1
		    WHERE id = $1::text AND version = $2::bigint
		    RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = $1::text)`,
		append([]any{id, version}, args...)...).Scan(&updated, &exists)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: %s of webhook subscription %s: %w", op, id, wrap(err))
	case updated:
		return nil
	case !exists:
		return fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
	}
	return fmt.Errorf("%w: webhook subscription %s is no longer at version %d", domain.ErrConflict, id, version)
}

// UpdateSubscription implements ports.Webhooks; CreatedAt and CreatedBy
// stay the creation's.
func (s *Store) UpdateSubscription(ctx context.Context, sub domain.Subscription) error {
	actions, users, kinds, secrets, err := subscriptionArgs(sub)
	if err != nil {
		return fmt.Errorf("postgres: update webhook subscription %s: %w", sub.ID, err)
	}
	st := sub.State
	return s.cas(ctx, "update", sub.ID, sub.Version, `
		url = $3::text, filter_actions = $4::text[], filter_users = $5::bigint[], filter_kinds = $6::text[],
		secrets = $7::jsonb, position = $8::bigint, pending = $9::bigint, failures = $10::int, paused = $11::boolean,
		last_error = $12::text, next_try = $13::timestamptz`,
		sub.URL, actions, users, kinds, secrets, st.Position, st.Pending, st.Failures, st.Paused, st.LastError, nullTime(st.NextTry))
}

// SetDeliveryState implements ports.Webhooks.
func (s *Store) SetDeliveryState(ctx context.Context, id string, version int64, st domain.DeliveryState) error {
	return s.cas(ctx, "set delivery state", id, version, `
		position = $3::bigint, pending = $4::bigint, failures = $5::int, paused = $6::boolean,
		last_error = $7::text, next_try = $8::timestamptz`,
		st.Position, st.Pending, st.Failures, st.Paused, st.LastError, nullTime(st.NextTry))
}

// DeleteSubscription implements ports.Webhooks; the log goes with it (ON
// DELETE CASCADE).
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhook_subscriptions WHERE id = $1::text`, id)
	if err != nil {
		return fmt.Errorf("postgres: delete webhook subscription %s: %w", id, wrap(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("postgres: delete webhook subscription %s: %w", id, wrap(err))
	}
	if n == 0 {
		return fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
	}
	return nil
}

const deliveryCols = `subscription, message_id, first_position, last_position, changes, attempt, at, duration, status_code, error`

type deliveryRow struct {
	Subscription string    `db:"subscription"`
	MessageID    string    `db:"message_id"`
	First        int64     `db:"first_position"`
	Last         int64     `db:"last_position"`
	Count        int64     `db:"changes"`
	Attempt      int64     `db:"attempt"`
	At           time.Time `db:"at"`
	Duration     int64     `db:"duration"`
	StatusCode   int64     `db:"status_code"`
	Error        string    `db:"error"`
}

// recordDeliverySQL appends an attempt in one statement, under the
// subscription's row lock (a deleted subscription gets none), and about
// one time in 32 trims the subscription's log to its newest ports.KeptDeliveries
// (reads never show more): trimming on every insert scanned a thousand
// index entries per delivery.
const recordDeliverySQL = `
WITH sub AS (
    SELECT id FROM webhook_subscriptions WHERE id = $1::text FOR NO KEY UPDATE
), ins AS (
    INSERT INTO webhook_deliveries (` + deliveryCols + `)
    SELECT $1::text, $2::text, $3::bigint, $4::bigint, $5::int, $6::int, $7::timestamptz, $8::bigint, $9::int, $10::text FROM sub
    RETURNING seq
), trim AS (
    DELETE FROM webhook_deliveries
    WHERE random() < 1.0/32 AND EXISTS (SELECT 1 FROM ins) AND subscription = $1::text AND seq <= (
        SELECT seq FROM webhook_deliveries WHERE subscription = $1::text
        ORDER BY seq DESC OFFSET $11::int LIMIT 1
    )
)
SELECT count(*) FROM ins`

// RecordDelivery implements ports.Webhooks.
func (s *Store) RecordDelivery(ctx context.Context, d domain.Delivery) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int
	err := s.db.QueryRowContext(ctx, recordDeliverySQL,
		d.Subscription, d.MessageID, d.First, d.Last, d.Count, d.Attempt, domain.Normalize(d.At), int64(d.Duration),
		d.StatusCode, d.Error, ports.KeptDeliveries).Scan(&n)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: record a delivery to webhook subscription %s: %w", d.Subscription, wrap(err))
	case n == 0:
		return fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, d.Subscription)
	}
	return nil
}

// Deliveries implements ports.Webhooks; an unknown id has none.
func (s *Store) Deliveries(ctx context.Context, id string, limit int) ([]domain.Delivery, error) {
	if limit <= 0 {
		return []domain.Delivery{}, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var rs []deliveryRow
	if err := s.db.SelectContext(ctx, &rs, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE subscription = $1::text ORDER BY seq DESC LIMIT $2::int`, id, min(limit, ports.KeptDeliveries)); err != nil {
		return nil, fmt.Errorf("postgres: deliveries of webhook subscription %s: %w", id, wrap(err))
	}
	out := make([]domain.Delivery, len(rs))
	for i, r := range rs {
		out[i] = domain.Delivery{
			Subscription: r.Subscription, MessageID: r.MessageID, First: r.First, Last: r.Last, Count: int(r.Count),
			Attempt: int(r.Attempt), At: r.At.UTC(), Duration: time.Duration(r.Duration),
			StatusCode: int(r.StatusCode), Error: r.Error,
		}
	}
	return out, nil
}
