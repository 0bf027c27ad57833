package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var _ ports.Webhooks = (*Store)(nil)

const subscriptionColumns = `id, url, filter_actions, filter_users, filter_kinds, secrets, created_at, created_by, version,
	position, pending, failures, paused, last_error, next_try`

// subscriptionRow is a webhook_subscriptions row as stored: lists are JSON
// arrays, times Unix microseconds.
type subscriptionRow struct {
	ID        string        `db:"id"`
	URL       string        `db:"url"`
	Actions   string        `db:"filter_actions"`
	Users     string        `db:"filter_users"`
	Kinds     string        `db:"filter_kinds"`
	Secrets   string        `db:"secrets"`
	CreatedAt int64         `db:"created_at"`
	CreatedBy string        `db:"created_by"`
	Version   int64         `db:"version"`
	Position  int64         `db:"position"`
	Pending   int64         `db:"pending"`
	Failures  int64         `db:"failures"`
	Paused    bool          `db:"paused"`
	LastError string        `db:"last_error"`
	NextTry   sql.NullInt64 `db:"next_try"`
}

// jsonList encodes l as a JSON array, "[]" when empty.
func jsonList[T any](l []T) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// fromJSONList decodes a JSON array; an empty one is nil.
func fromJSONList[T any](s, column string) ([]T, error) {
	var l []T
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("webhook subscription %s: %w", column, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// subscriptionLists returns the stored forms of s's lists: the filter's
// three and the secrets.
func subscriptionLists(s domain.Subscription) (actions, users, kinds, secrets string, err error) {
	if actions, err = jsonList(s.Filter.Actions); err != nil {
		return
	}
	if users, err = jsonList(s.Filter.Users); err != nil {
		return
	}
	if kinds, err = jsonList(s.Filter.Kinds); err != nil {
		return
	}
	secrets, err = storage.EncodeSecrets(s.Secrets)
	return
}

func (r subscriptionRow) subscription() (domain.Subscription, error) {
	s := domain.Subscription{
		ID: r.ID, URL: r.URL, CreatedAt: fromMicros(r.CreatedAt), CreatedBy: r.CreatedBy, Version: r.Version,
		State: domain.DeliveryState{Position: r.Position, Pending: r.Pending, Failures: int(r.Failures), Paused: r.Paused,
			LastError: r.LastError},
	}
	if r.NextTry.Valid {
		s.State.NextTry = fromMicros(r.NextTry.Int64)
	}
	var err error
	if s.Filter.Actions, err = fromJSONList[domain.Action](r.Actions, "filter_actions"); err != nil {
		return s, err
	}
	if s.Filter.Users, err = fromJSONList[int64](r.Users, "filter_users"); err != nil {
		return s, err
	}
	if s.Filter.Kinds, err = fromJSONList[domain.ChangeKind](r.Kinds, "filter_kinds"); err != nil {
		return s, err
	}
	if s.Secrets, err = storage.DecodeSecrets([]byte(r.Secrets)); err != nil {
		return s, fmt.Errorf("webhook subscription %s: %w", r.ID, err)
	}
	return s, nil
}

// CreateSubscription implements ports.Webhooks.
func (s *Store) CreateSubscription(ctx context.Context, sub domain.Subscription) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	actions, users, kinds, secrets, err := subscriptionLists(sub)
	if err != nil {
		return fmt.Errorf("sqlite: create webhook subscription %s: %w", sub.ID, err)
	}
	st := sub.State
	err = s.writeTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_subscriptions (`+subscriptionColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.URL, actions, users, kinds, secrets, micros(sub.CreatedAt), sub.CreatedBy,
			st.Position, st.Pending, st.Failures, st.Paused, st.LastError, optionalTime(st.NextTry))
		return err
	})
	if err != nil {
		return mapErr("create webhook subscription "+sub.ID, err)
	}
	return nil
}

// Subscription implements ports.Webhooks.
func (s *Store) Subscription(ctx context.Context, id string) (domain.Subscription, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var r subscriptionRow
	err := s.r.GetContext(ctx, &r, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Subscription{}, fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
	}
	if err != nil {
		return domain.Subscription{}, mapErr("webhook subscription "+id, err)
	}
	sub, err := r.subscription()
	if err != nil {
		return domain.Subscription{}, fmt.Errorf("sqlite: %w", err)
	}
	return sub, nil
}

// Subscriptions implements ports.Webhooks: oldest first, ties in the order
// they were stored.
func (s *Store) Subscriptions(ctx context.Context) ([]domain.Subscription, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []subscriptionRow
	if err := s.r.SelectContext(ctx, &rows, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions ORDER BY created_at, rowid`); err != nil {
		return nil, mapErr("list webhook subscriptions", err)
	}
	out := make([]domain.Subscription, len(rows))
	for i, r := range rows {
		var err error
		if out[i], err = r.subscription(); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	return out, nil
}

// casMissed explains a compare-and-set that changed no row: the
// subscription is gone, or its version moved on.
func casMissed(ctx context.Context, tx *sqlx.Tx, id string, version int64) error {
	var current int64
	err := tx.GetContext(ctx, &current, `SELECT version FROM webhook_subscriptions WHERE id = ?`, id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
	case err != nil:
		return err
	}
	return fmt.Errorf("%w: webhook subscription %s is at version %d, not %d", domain.ErrConflict, id, current, version)
}

// casExec runs a compare-and-set UPDATE whose last two arguments are the
// id and the expected version.
func (s *Store) casExec(ctx context.Context, id string, version int64, query string, args ...any) error {
	return s.writeTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, query, append(args, id, version)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return casMissed(ctx, tx, id, version)
		}
		return nil
	})
}

// UpdateSubscription implements ports.Webhooks; CreatedAt and CreatedBy
// stay the creation's.
func (s *Store) UpdateSubscription(ctx context.Context, sub domain.Subscription) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	actions, users, kinds, secrets, err := subscriptionLists(sub)
	if err != nil {
		return fmt.Errorf("sqlite: update webhook subscription %s: %w", sub.ID, err)
	}
	st := sub.State
	err = s.casExec(ctx, sub.ID, sub.Version, `UPDATE webhook_subscriptions
		SET url = ?, filter_actions = ?, filter_users = ?, filter_kinds = ?, secrets = ?,
		    position = ?, pending = ?, failures = ?, paused = ?, last_error = ?, next_try = ?, version = version + 1
		WHERE id = ? AND version = ?`,
		sub.URL, actions, users, kinds, secrets,
		st.Position, st.Pending, st.Failures, st.Paused, st.LastError, optionalTime(st.NextTry))
	if err != nil {
		return mapErr("update webhook subscription "+sub.ID, err)
	}
	return nil
}

// SetDeliveryState implements ports.Webhooks.
func (s *Store) SetDeliveryState(ctx context.Context, id string, version int64, st domain.DeliveryState) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.casExec(ctx, id, version, `UPDATE webhook_subscriptions
		SET position = ?, pending = ?, failures = ?, paused = ?, last_error = ?, next_try = ?, version = version + 1
		WHERE id = ? AND version = ?`,
		st.Position, st.Pending, st.Failures, st.Paused, st.LastError, optionalTime(st.NextTry))
	if err != nil {
		return mapErr("set delivery state of webhook subscription "+id, err)
	}
	return nil
}

// DeleteSubscription implements ports.Webhooks. The log is deleted by
// name, not left to the foreign key, so that it goes even where a DSN
// turned foreign keys off.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE subscription = ?`, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_subscriptions WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id))
		}
		return nil
	})
	if err != nil {
		return mapErr("delete webhook subscription "+id, err)
	}
	return nil
}

const deliveryColumns = `subscription, message_id, first_position, last_position, changes, attempt, at, duration, status_code, error`

// deliveryRow is a webhook_deliveries row as stored.
type deliveryRow struct {
	Subscription string `db:"subscription"`
	MessageID    string `db:"message_id"`
	First        int64  `db:"first_position"`
	Last         int64  `db:"last_position"`
	Count        int64  `db:"changes"`
	Attempt      int64  `db:"attempt"`
	At           int64  `db:"at"`
	Duration     int64  `db:"duration"`
	StatusCode   int64  `db:"status_code"`
	Error        string `db:"error"`
}

// RecordDelivery implements ports.Webhooks: the insert and the trim of
// the log to its latest ports.KeptDeliveries are one transaction.
func (s *Store) RecordDelivery(ctx context.Context, d domain.Delivery) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (`+deliveryColumns+`)
			SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = ?)`,
			d.Subscription, d.MessageID, d.First, d.Last, d.Count, d.Attempt, micros(d.At), int64(d.Duration),
			d.StatusCode, d.Error, d.Subscription)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, d.Subscription))
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE subscription = ? AND seq <= (
			SELECT seq FROM webhook_deliveries WHERE subscription = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
			d.Subscription, d.Subscription, ports.KeptDeliveries)
		return err
	})
	if err != nil {
		return mapErr("record a delivery to webhook subscription "+d.Subscription, err)
	}
	return nil
}

// Deliveries implements ports.Webhooks; an unknown id has none.
func (s *Store) Deliveries(ctx context.Context, id string, limit int) ([]domain.Delivery, error) {
	if limit <= 0 {
		return []domain.Delivery{}, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []deliveryRow
	if err := s.r.SelectContext(ctx, &rows, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE subscription = ? ORDER BY seq DESC LIMIT ?`, id, limit); err != nil {
		return nil, mapErr("deliveries of webhook subscription "+id, err)
	}
	out := make([]domain.Delivery, len(rows))
	for i, r := range rows {
		out[i] = domain.Delivery{
			Subscription: r.Subscription, MessageID: r.MessageID, First: r.First, Last: r.Last, Count: int(r.Count),
			Attempt: int(r.Attempt), At: fromMicros(r.At), Duration: time.Duration(r.Duration),
			StatusCode: int(r.StatusCode), Error: r.Error,
		}
	}
	return out, nil
}
