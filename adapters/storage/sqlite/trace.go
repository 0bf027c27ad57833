package sqlite

import (
	"context"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
)

// groupSpan starts the span of a group commit's shared transaction (see
// flushGroup): storage.BatchSpan over the group's requests.
func (s *Store) groupSpan(ctx context.Context, group []*createReq) (context.Context, trace.Span) {
	reqs := make([]context.Context, len(group))
	for i, r := range group {
		reqs[i] = r.ctx
	}
	return storage.BatchSpan(ctx, s.tracer, "sqlite.group_commit", reqs,
		semconv.DBSystemNameSQLite, semconv.DBOperationBatchSize(len(group)))
}
