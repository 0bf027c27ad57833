package postgres

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
)

func benchEvent(i int64, now time.Time) domain.Event {
	e := mkEvent(1+i%10_000, "upload_file", now)
	e.Metadata = []byte(`{"bytes":12345,"path":"/tmp/report.pdf"}`)
	return e
}

// BenchmarkCreate is single-event creates from many goroutines, one
// statement (and commit) each.
func BenchmarkCreate(b *testing.B) {
	benchCreate(b, newStore(b), context.Background())
}

// BenchmarkCreateTraced is BenchmarkCreate through the tracing wrapper
// (storage.Options.TracerProvider, an SDK provider exporting nothing):
// calls without a span in the context (no SQL spans, the wrapper's own
// cost), and calls under a span (a client span per statement).
func BenchmarkCreateTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := newStoreWith(b, "", storage.Options{TracerProvider: tp})
	b.Run("no-span", func(b *testing.B) { benchCreate(b, s, context.Background()) })
	b.Run("span", func(b *testing.B) {
		ctx, span := tp.Tracer("bench").Start(context.Background(), "bench")
		defer span.End()
		benchCreate(b, s, ctx)
	})
}

func benchCreate(b *testing.B, s *Store, ctx context.Context) {
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Create(ctx, benchEvent(n.Add(1), time.Now()), "bench"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkCreateMany stores batches of 1000 new events, one statement per
// batch.
func BenchmarkCreateMany(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	const batch = 1000
	es := make([]domain.Event, batch)
	var n int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		now := time.Now()
		for i := range es {
			n++
			es[i] = benchEvent(n, now)
		}
		if _, err := s.CreateMany(ctx, es, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkListUser reads the newest 50 events of one user (20k of the
// 100k events over ten monthly partitions), uncached, from many
// goroutines.
func BenchmarkListUser(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	cur := monthStart(time.Now())
	if err := s.EnsurePartitions(ctx, cur.AddDate(0, -6, 0)); err != nil {
		b.Fatal(err)
	}
	loadEvents(ctx, b, s, 100_000, cur.AddDate(0, -6, 0), cur.AddDate(0, PartitionsAhead+1, 0))
	if _, err := s.db.ExecContext(ctx, "VACUUM ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	f := domain.Filter{UserID: 1, TimeField: domain.ByRecordedAt, Order: domain.Desc, Limit: 50}
	b.Run("newest50", func(b *testing.B) {
		b.SetParallelism(4)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, err := s.List(ctx, f)
				if err != nil || len(p.Events) != 50 {
					b.Errorf("List: %d events, %v", len(p.Events), err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lists/s")
	})
}
