package asynqjobs

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/activityd/activityd/domain"
)

// Tracing: a trace follows each window from whoever asked for it to the
// worker that computes it.
//
//   - The scheduler starts a span for each run ("count-window schedule",
//     at start and after each tick), covering the planning and, as its
//     children, one producer span per window planned.
//   - Enqueue (an admin's "compute now") starts one producer span per
//     window, a child of the caller's span (the HTTP request's).
//   - Each producer span ("count-window enqueue") is carried in the task's
//     headers, by the propagator (W3C traceparent, with the default one);
//     the payload, and so the uniqueness of the task, is the same traced
//     or not. A window already queued keeps the headers of the enqueue
//     that queued it: its producer span says "exists".
//   - The worker starts a consumer span ("count-window compute") for each
//     attempt, a child of the producer span found in the headers (a root
//     span for a task without them), and computes the window under it, so
//     the storage's and the cache's spans are its children.
const (
	instrumentationName = "github.com/activityd/activityd/adapters/jobs/asynq"

	spanSchedule = "count-window schedule"
	spanEnqueue  = "count-window enqueue"
	spanCompute  = "count-window compute"
)

// Outcomes of an enqueue, in the producer span's activityd.task.outcome.
const (
	outcomeEnqueued = "enqueued" // a new task
	outcomeExists   = "exists"   // a task of that id was already there; nothing was enqueued
	outcomeReplaced = "replaced" // a completed or dead task was deleted, and a new one enqueued
)

// tracing returns the tracer of tp (no-op if nil) and prop (the global
// propagator if nil).
func tracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) (trace.Tracer, propagation.TextMapPropagator) {
	if tp == nil {
		tp = nooptrace.NewTracerProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	return tp.Tracer(instrumentationName), prop
}

// taskAttributes describe the task of a window, in the OpenTelemetry
// messaging conventions (operation "send" or "process").
func taskAttributes(operation, queue, id string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "asynq"),
		attribute.String("messaging.operation.type", operation),
		attribute.String("messaging.destination.name", queue),
		attribute.String("messaging.message.id", id),
	}
}

// windowAttributes are a window's bounds, in RFC 3339 (UTC).
func windowAttributes(w domain.Window) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("activityd.window.start", domain.FormatTime(domain.Normalize(w.Start))),
		attribute.String("activityd.window.end", domain.FormatTime(domain.Normalize(w.End))),
	}
}

// failSpan records err on span and marks it failed.
func failSpan(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
