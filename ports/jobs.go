package ports

import (
	"context"
	"time"

	"github.com/activityd/activityd/domain"
)

// CountJob is the counting work as a jobs adapter runs it, whatever runs
// it (a goroutine of serve, or an asynq worker): *app.Counts implements it.
type CountJob interface {
	// Plan returns the windows due at now, oldest first, and how many older
	// ones the catch-up bound left out (domain.DueWindows over the stored
	// watermark).
	Plan(ctx context.Context, now time.Time) (due []domain.Window, skipped int, err error)
	// Compute computes one window (idempotent: running it twice, or twice
	// at once, leaves the same result) and returns how many users had
	// events in it.
	Compute(ctx context.Context, w domain.Window) (users int, err error)
}

// Jobs runs the counting job: on its schedule, and on demand. The
// in-process runner (adapters/jobs/inprocess) does both in the serving
// process; a queue-backed adapter (asynq) splits them between a scheduler,
// which plans at each tick and enqueues one task per window with a
// deterministic task id, and workers, which call CountJob.Compute.
type Jobs interface {
	// Run drives job on the schedule until ctx ends: once at start (to
	// catch up on windows missed while nothing ran) and at every tick, it
	// plans the due windows and has them computed, oldest first, together
	// with whatever Enqueue handed over. It returns nil when ctx ends,
	// after the window being computed (if any) is done or abandoned
	// (a computation is one transaction: abandoning it changes nothing).
	Run(ctx context.Context, job CountJob) error
	// Enqueue hands windows over to be computed as soon as possible,
	// oldest first, and returns without waiting for them. A window already
	// waiting is not queued twice.
	Enqueue(ctx context.Context, ws []domain.Window) error
}

// DeliveryStep is the outcome of one step of a subscription's webhook
// delivery (WebhookJob.Deliver).
type DeliveryStep struct {
	Delivered int       // changes delivered (0: none)
	Skipped   bool      // the changes read matched nothing, and were passed over
	Idle      bool      // nothing to deliver now
	Failed    bool      // the attempt failed, or a retry is not due yet
	RetryAt   time.Time // when Failed: the next attempt is due then
	Paused    bool      // the subscription is paused (or was just paused)
}

// WebhookJob is the webhook delivery work as a jobs adapter runs it (the
// in-process dispatcher, or asynq's workers): *app.Webhooks implements it.
type WebhookJob interface {
	// Active returns the ids of the subscriptions that are not paused.
	Active(ctx context.Context) ([]string, error)
	// Deliver makes one step of subscription id's delivery; steps of one
	// subscription must not run at once (a second one would repeat a
	// message, never lose one).
	Deliver(ctx context.Context, id string) (DeliveryStep, error)
}
