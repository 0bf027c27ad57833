package sqlite

import (
	"context"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
)

// groupSpan starts the span of a group commit's shared transaction (see
// flushGroup): storage.BatchSpan over the group's requests.
func (s *Store) groupSpan(ctx context.Context, calls []storage.Call[createReq]) (context.Context, trace.Span) {
	return storage.BatchSpan(ctx, s.tracer, "sqlite.group_commit", storage.Contexts(calls),
		semconv.DBSystemNameSQLite, semconv.DBOperationBatchSize(len(calls)))
}
