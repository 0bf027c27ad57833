package asynqjobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Webhook deliveries over asynq: the API replicas (Deliveries.Run) enqueue
// one "webhook:deliver" task per subscription whenever they store a change
// (and every Poll, for the others' changes), with the subscription's id as
// the task id, so a subscription has at most one task, waiting, running or
// being retried: its deliveries stay in order. Workers take the tasks and
// deliver (ports.WebhookJob.Deliver) until the subscription is idle; a
// failed delivery fails the task, and asynq retries it when the
// subscription's backoff says (the delay is the step's RetryAt), so the
// exponential backoff lives in Redis, not in a replica's memory.

// Names of the webhook tasks.
const (
	// QueueWebhooks is the asynq queue the delivery tasks go to.
	QueueWebhooks = "webhooks"
	// TypeDeliver is the type of the task that delivers one subscription's
	// pending changes.
	TypeDeliver = "webhook:deliver"
	// deliverMaxRetry: retries are the subscription's to bound (it pauses
	// after WEBHOOK_MAX_FAILURES failures in a row), not asynq's.
	deliverMaxRetry = 1 << 20
	// deliverBudget bounds one task's work, so that a subscription with a
	// long backlog does not hold a worker from the others; the next
	// enqueue (at most Poll later) carries on.
	deliverBudget = 10 * time.Second
)

// DeliverTaskID is the task id of subscription id's deliveries.
func DeliverTaskID(id string) string { return "webhook:" + id }

// deliverPayload is a webhook:deliver task's payload.
type deliverPayload struct {
	Subscription string `json:"subscription"`
}

// DeliveriesConfig configures Deliveries.
type DeliveriesConfig struct {
	Redis *redis.UniversalOptions
	// Wake, when not nil, returns a channel closed when this process
	// stores a change (app.Feed.Changed).
	Wake func() <-chan struct{}
	// Poll is how often every active subscription gets a task, for the
	// changes other processes stored. 0: a second.
	Poll   time.Duration
	Logger *slog.Logger
}

// Deliveries enqueues webhook delivery tasks from an API replica.
type Deliveries struct {
	cfg DeliveriesConfig
	log *slog.Logger
	rdb redis.UniversalClient
	cli *asynq.Client
}

// NewDeliveries connects to Redis (lazily) and returns the enqueuer.
func NewDeliveries(cfg DeliveriesConfig) (*Deliveries, error) {
	if cfg.Redis == nil {
		return nil, errors.New("asynqjobs: no Redis options")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rdb := redis.NewUniversalClient(cfg.Redis)
	return &Deliveries{cfg: cfg, log: log, rdb: rdb, cli: asynq.NewClientFromRedisClient(rdb)}, nil
}

// Close closes the connections to Redis.
func (d *Deliveries) Close() error { return errors.Join(d.cli.Close(), d.rdb.Close()) }

// Enqueue queues a delivery task for each subscription in ids that has
// none; queued counts the new ones.
func (d *Deliveries) Enqueue(ctx context.Context, ids []string) (queued int, err error) {
	for _, id := range ids {
		b, err := json.Marshal(deliverPayload{Subscription: id})
		if err != nil {
			return queued, err
		}
		t := asynq.NewTask(TypeDeliver, b, asynq.TaskID(DeliverTaskID(id)), asynq.Queue(QueueWebhooks),
			asynq.MaxRetry(deliverMaxRetry))
		_, err = d.cli.EnqueueContext(ctx, t)
		switch {
		case err == nil:
			queued++
		case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		default:
			return queued, fmt.Errorf("asynqjobs: enqueue webhook %s: %w", id, err)
		}
	}
	return queued, nil
}

// Run enqueues the active subscriptions' tasks whenever this process stores
// a change and every Poll, until ctx ends.
func (d *Deliveries) Run(ctx context.Context, job ports.WebhookJob) error {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		var wake <-chan struct{}
		if d.cfg.Wake != nil {
			wake = d.cfg.Wake()
		}
		ids, err := job.Active(ctx)
		if err == nil {
			_, err = d.Enqueue(ctx, ids)
		}
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhooks: enqueue deliveries", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
	}
}

// retryAt fails a delivery task until at.
type retryAt struct {
	at    time.Time
	cause string
}

func (e *retryAt) Error() string {
	return fmt.Sprintf("webhook delivery failed (%s); retried at %s", e.cause, e.at.UTC().Format(time.RFC3339Nano))
}

// deliver runs a webhook:deliver task: steps until the subscription is idle
// or paused (done), a delivery fails (the task fails, retried at the
// step's RetryAt), or the budget is spent (done; the next enqueue goes on).
func (w *Worker) deliver(ctx context.Context, t *asynq.Task) error {
	var p deliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Subscription == "" {
		return fmt.Errorf("bad webhook:deliver payload: %w", asynq.SkipRetry)
	}
	stop := time.Now().Add(deliverBudget)
	for time.Now().Before(stop) {
		step, err := w.hooks.Deliver(ctx, p.Subscription)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return nil // deleted
		case errors.Is(err, domain.ErrConflict):
			continue // changed by an admin meanwhile: read it again
		case err != nil:
			return err // storage: asynq's own backoff
		case step.Paused, step.Idle:
			return nil
		case step.Failed:
			return &retryAt{at: step.RetryAt, cause: "see the subscription's delivery log"}
		}
	}
	return nil
}
