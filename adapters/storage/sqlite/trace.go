package sqlite

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// groupSpan starts the span of a group commit's shared transaction (see
// flushGroup), when tracing is on and a request of the group is traced:
// a child of the first traced request's span, linked to the other
// requests' spans (as a batch is in OpenTelemetry), so the transaction's
// SQL spans show in one request's trace and the others point to it.
// Otherwise it returns ctx and a span that records nothing.
func (s *Store) groupSpan(ctx context.Context, group []*createReq) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nooptrace.Span{}
	}
	var parent trace.SpanContext
	var links []trace.Link
	for _, r := range group {
		sc := trace.SpanContextFromContext(r.ctx)
		switch {
		case !sc.IsValid():
		case !parent.IsValid():
			parent = sc
		default:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if !parent.IsValid() {
		return ctx, nooptrace.Span{}
	}
	return s.tracer.Start(trace.ContextWithSpanContext(ctx, parent), "sqlite.group_commit",
		trace.WithLinks(links...),
		trace.WithAttributes(semconv.DBSystemNameSQLite, semconv.DBOperationBatchSize(len(group))))
}

// endSpan ends span, with an error status if err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "")
	}
	span.End()
}
