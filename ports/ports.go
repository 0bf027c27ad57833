// Package ports declares the interfaces the activityd core needs from the
// outside world — storage (Events, Counts, Tokens, Imports, Changes,
// Erasures, Evidence, Webhooks, together Store), webhook delivery (WebhookSender), the
// read cache (Cache, with the optional LatestGetter and InstanceWatcher),
// the record of invalidations the cache missed (CacheLedger), rate and
// failure limits (Limiter), jobs (Jobs) and the clock (Clock) — and the
// ones it offers to jobs adapters (CountJob, WebhookJob). Adapters implement them, each
// proved by a contract suite under test/; the app package depends only on
// them (docs/architecture.md, The ports).
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

// Counts stores the counting job's results: per window, per user and per
// action, and the watermark (the window with the latest end computed so
// far). Errors matching domain.ErrUnavailable mean the backing service
// cannot serve now.
type Counts interface {
	// ComputeWindow counts the events whose recorded_at lies in
	// [w.Start, w.End), per user and per action, in one aggregate query,
	// and stores the result in place of any earlier result for a window
	// with the same start, so computing a window twice leaves identical
	// rows. In the same transaction it advances the watermark to w, unless
	// the watermark already ends at or after w.End (it never goes back);
	// at is recorded as the computation time. Concurrent computations of
	// one window neither fail nor double count: they are serialised, and
	// the last one's rows stand. Users without events in w get no rows.
	// It returns how many users had events in w.
	ComputeWindow(ctx context.Context, w domain.Window, at time.Time) (users int, err error)
	// Watermark returns the computed window with the latest end, or the
	// zero Window when none was ever computed.
	Watermark(ctx context.Context) (domain.Window, error)
	// ListCounts returns one page of the computed counts f selects: one
	// item per (window, user), with the total and the per-action counts,
	// ordered by (window start, user id) in f's order, continuing after
	// f.After.
	ListCounts(ctx context.Context, f domain.CountFilter) (domain.CountPage, error)
}

// Imports takes in a predecessor's history (activityd import) and numbers
// the logs of the activity-logger surface, whose clients hold integer ids
// (domain.LegacyID).
type Imports interface {
	// Import stores es as CreateMany does, each in its own status: the
	// history of an event created in a status after PENDING holds, after
	// its initial entry, domain.StepsTo that status at its UpdatedAt, every
	// entry by by. An error stores nothing.
	Import(ctx context.Context, es []domain.Event, by string) ([]Created, error)
	// NextLegacyID returns an activity-logger log number never returned
	// before and above every number reserved.
	NextLegacyID(ctx context.Context) (int64, error)
	// ReserveLegacyIDs makes every later NextLegacyID answer above n (an
	// import reserves the numbers it brings in before it starts).
	ReserveLegacyIDs(ctx context.Context, n int64) error
}

// Changes reads the change feed. Stores record a change in the transaction
// that makes it (a create, a batch, an import, a status change) and number
// it there, so that positions follow commit order: a reader that has seen
// position P never later finds a change below P. Positions start at 1.
type Changes interface {
	// Changes returns the changes f selects, in position order: at most
	// f.Limit, with positions above f.After, only f.UserID's when it is not
	// 0. A change whose event is gone (retention) is left out.
	Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error)
	// FeedHead returns the highest position committed (0: none yet).
	FeedHead(ctx context.Context) (int64, error)
}

// Erasures removes a user's event metadata (a person's right to erasure).
type Erasures interface {
	// Erase replaces with {} the metadata of e.UserID's events recorded in
	// [e.From, e.To) (zero bounds: unbounded) that have any, and when it
	// erased some records e, with its Count, as a ChangeErased change, in
	// one transaction. It returns e with Count set. Erasing again erases
	// nothing and records nothing.
	Erase(ctx context.Context, e domain.Erasure) (domain.Erasure, error)
}

// Evidence keeps what makes the change feed verifiable (issue 18): every
// change's link in its user's hash chain, made by the store in the
// change's own transaction in position order, and the checkpoints signed
// over the chains' heads. Checkpoints kept here are a convenience: their
// copies outside the database are what an attacker cannot rewrite.
type Evidence interface {
	// ChainRecords returns the records of the changes f selects, in
	// position order, as ports.Changes selects changes, but keeping a
	// change whose event is gone (Gone).
	ChainRecords(ctx context.Context, f domain.ChangeFilter) ([]domain.ChainRecord, error)
	// ChainHeads returns every user's chain head, in user id order, as of
	// one committed position, which it returns too.
	ChainHeads(ctx context.Context) (int64, []domain.ChainHead, error)
	// SaveCheckpoint stores c with its leaves (the heads it signed, in
	// user id order); one at c.Position already is domain.ErrConflict.
	// Only the newest KeptLeaves checkpoints keep their leaves.
	SaveCheckpoint(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error
	// Checkpoints returns at most limit checkpoints below position before
	// (0: from the newest), newest first.
	Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error)
	// CheckpointLeaves returns the leaves of the checkpoint at position;
	// domain.ErrNotFound when it is unknown or no longer keeps them.
	CheckpointLeaves(ctx context.Context, position int64) ([]domain.ChainHead, error)
}

// KeptLeaves is how many of the newest checkpoints keep their leaves
// (what inclusion proofs are made from): a leaf is 56 bytes per user.
const KeptLeaves = 24

// KeptDeliveries is how many attempts a subscription's delivery log keeps.
const KeptDeliveries = 1000

// Webhooks stores webhook subscriptions and their delivery log. Writes of a
// subscription are compare-and-set on its Version: they return
// domain.ErrConflict when the stored Version differs from the one given,
// domain.ErrNotFound when there is no such subscription, and store the
// subscription with Version + 1.
type Webhooks interface {
	// CreateSubscription stores s (Version 1); an existing id is an error.
	CreateSubscription(ctx context.Context, s domain.Subscription) error
	// Subscription returns one subscription.
	Subscription(ctx context.Context, id string) (domain.Subscription, error)
	// Subscriptions returns every subscription, oldest first.
	Subscriptions(ctx context.Context) ([]domain.Subscription, error)
	// UpdateSubscription replaces the stored subscription s.ID, State
	// included, if its Version is still s.Version.
	UpdateSubscription(ctx context.Context, s domain.Subscription) error
	// SetDeliveryState replaces subscription id's State only, if its
	// Version is still version.
	SetDeliveryState(ctx context.Context, id string, version int64, st domain.DeliveryState) error
	// DeleteSubscription removes a subscription and its delivery log.
	DeleteSubscription(ctx context.Context, id string) error
	// RecordDelivery appends d to its subscription's delivery log, which
	// keeps the latest KeptDeliveries attempts of each subscription.
	RecordDelivery(ctx context.Context, d domain.Delivery) error
	// Deliveries returns the latest attempts of subscription id, newest
	// first, at most limit.
	Deliveries(ctx context.Context, id string, limit int) ([]domain.Delivery, error)
}

// Store is everything a storage adapter provides.
type Store interface {
	Events
	Tokens
	Counts
	Imports
	Changes
	Erasures
	Evidence
	Webhooks
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

// WebhookSender delivers one message to a subscription's endpoint, signed
// with the subscription's secrets. It returns the receiver's status code
// (0 when none came) and an error unless the receiver answered 2xx.
type WebhookSender interface {
	Send(ctx context.Context, sub domain.Subscription, m WebhookMessage) (status int, err error)
}

// WebhookMessage is what one delivery carries: changes of the feed, in
// order, under an id that stays the same on every retry.
type WebhookMessage struct {
	ID      string // the webhook-id header
	At      time.Time
	Changes []domain.Change
}

// CheckpointSink keeps signed checkpoints where the database cannot change
// them: a file directory, standard output, a webhook's receiver.
type CheckpointSink interface {
	// Name says where, for logs and responses ("dir:/var/lib/x", "stdout").
	Name() string
	// Put writes c with its leaves; writing one already there is a no-op.
	Put(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error
}

// CheckpointSource is a sink that can read back the newest checkpoint it
// holds, with its leaves; domain.ErrNotFound when it holds none.
type CheckpointSource interface {
	Latest(ctx context.Context) (domain.Checkpoint, []domain.ChainHead, error)
}
