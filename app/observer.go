package app

import (
	"context"
	"errors"
	"time"

	"github.com/activityd/activityd/domain"
)

// Observer hears what the use cases did, for metrics. Its methods are
// called synchronously on the request's or job's goroutine, with its
// context (so an exporter can attach exemplars), and must be cheap and
// safe for concurrent use.
type Observer interface {
	// Recorded: one event was newly stored (idempotent retries are not).
	Recorded(ctx context.Context, action domain.Action)
	// Transitioned: a transition of an existing event from → to ended
	// with result.
	Transitioned(ctx context.Context, from, to domain.Status, result TransitionResult)
	// Computed: one counting window was computed (err == nil, users
	// counted) or failed, after took.
	Computed(ctx context.Context, w domain.Window, users int, took time.Duration, err error)
}

// TransitionResult is how a transition attempt ended.
type TransitionResult string

// The transition results an Observer hears.
const (
	TransitionOK       TransitionResult = "ok"       // the status moved
	TransitionInvalid  TransitionResult = "invalid"  // the workflow forbids from → to
	TransitionConflict TransitionResult = "conflict" // a concurrent transition moved it first
	TransitionError    TransitionResult = "error"    // storage failed
)

// WithObserver has Events report to o.
func WithObserver(o Observer) Option {
	return func(s *Events) { s.observer = o }
}

// transitionResult classifies a transition's outcome.
func transitionResult(err error) TransitionResult {
	switch {
	case err == nil:
		return TransitionOK
	case errors.Is(err, domain.ErrInvalidTransition):
		return TransitionInvalid
	case errors.Is(err, domain.ErrStatusConflict):
		return TransitionConflict
	default:
		return TransitionError
	}
}

// nopObserver hears nothing; it stands in when none is configured.
type nopObserver struct{}

func (nopObserver) Recorded(context.Context, domain.Action) {}
func (nopObserver) Transitioned(context.Context, domain.Status, domain.Status, TransitionResult) {
}
func (nopObserver) Computed(context.Context, domain.Window, int, time.Duration, error) {}
