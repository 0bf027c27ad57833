package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// PartitionsAhead is how many months after the current one EnsurePartitions
// prepares.
const PartitionsAhead = 3

// The partitioned tables and the prefix of their monthly partitions.
var partitioned = []struct{ parent, key string }{
	{"events", "recorded_at"},
	{"event_status_history", "event_recorded_at"},
}

// monthStart returns the first instant of t's month, in UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partitionName(parent string, month time.Time) string {
	return fmt.Sprintf("%s_p%04d%02d", parent, month.Year(), int(month.Month()))
}

// parsePartitionMonth returns the month a partition of parent covers, from
// its name; ok is false for a name this package did not make.
func parsePartitionMonth(parent, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, parent+"_p")
	if !ok || len(rest) != 6 {
		return time.Time{}, false
	}
	m, err := time.Parse("200601", rest)
	if err != nil {
		return time.Time{}, false
	}
	return m.UTC(), true
}

func pgTime(t time.Time) string {
	return pq.QuoteLiteral(t.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
}

// EnsurePartitions creates the monthly partitions of events and their status
// history for now's month and the PartitionsAhead months after it, if they
// do not exist yet. Rows of those months that already sit in the DEFAULT
// partition are moved into the new partition. It is idempotent and safe to
// run from several replicas at once (the work is done under an advisory
// lock); Migrate calls it, and a running service should call it
// periodically, e.g. daily.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	first := monthStart(now)
	var months []time.Time
	for i := 0; i <= PartitionsAhead; i++ {
		months = append(months, first.AddDate(0, i, 0))
	}
	return s.ensureMonths(ctx, months)
}

func (s *Store) ensureMonths(ctx context.Context, months []time.Time) error {
	missing, err := missingPartitions(ctx, s.db, months)
	if err != nil || len(missing) == 0 {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	schema, err := currentSchema(ctx, tx)
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	// Moving rows out of a large DEFAULT partition may take a while; the
	// lock on the parent must not be waited for forever.
	for _, q := range []string{`SET LOCAL statement_timeout = '5min'`, `SET LOCAL lock_timeout = '10s'`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("postgres: ensure partitions: %w", wrap(err))
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("partitions", schema)); err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", wrap(err))
	}
	// Another replica may have created them while we waited.
	missing, err = missingPartitions(ctx, tx, months)
	if err != nil {
		return err
	}
	for _, m := range months {
		for _, p := range partitioned {
			name := partitionName(p.parent, m)
			if !missing[name] {
				continue
			}
			if err := createPartition(ctx, tx, p.parent, p.key, m); err != nil {
				return fmt.Errorf("postgres: create partition %s: %w", name, wrap(err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", wrap(err))
	}
	return nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// missingPartitions returns the names of the monthly partitions of months
// that do not exist in the current schema.
func missingPartitions(ctx context.Context, q queryer, months []time.Time) (map[string]bool, error) {
	missing := map[string]bool{}
	var names []string
	for _, m := range months {
		for _, p := range partitioned {
			n := partitionName(p.parent, m)
			names = append(names, n)
			missing[n] = true
		}
	}
	rows, err := q.QueryContext(ctx, `
		SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		  AND c.relname = ANY($1::text[])`, pq.Array(names))
	if err != nil {
		return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
		}
		delete(missing, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
	}
	return missing, nil
}

// createPartition creates parent's partition for month. When the DEFAULT
// partition holds rows of that month, a plain CREATE ... PARTITION OF
// would fail; they are then moved into a new table that is attached.
func createPartition(ctx context.Context, tx *sql.Tx, parent, key string, month time.Time) error {
	name := partitionName(parent, month)
	from, to := pgTime(month), pgTime(month.AddDate(0, 1, 0))
	qp, qn, qk := pq.QuoteIdentifier(parent), pq.QuoteIdentifier(name), pq.QuoteIdentifier(key)
	qd := pq.QuoteIdentifier(parent + "_default")

	var stray bool
	err := tx.QueryRowContext(ctx, fmt.Sprintf(
		`SELECT EXISTS (SELECT 1 FROM %s WHERE %s >= %s AND %s < %s)`, qd, qk, from, qk, to)).Scan(&stray)
	if err != nil {
		return err
	}
	if !stray {
		_, err := tx.ExecContext(ctx, fmt.Sprintf(
			`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%s) TO (%s)`, qn, qp, from, to))
		return err
	}
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`, qn, qp),
		fmt.Sprintf(`WITH moved AS (DELETE FROM %s WHERE %s >= %s AND %s < %s RETURNING *)
			INSERT INTO %s SELECT * FROM moved`, qd, qk, from, qk, to, qn),
		fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)`, qp, qn, from, to),
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Partition is one monthly partition of events.
type Partition struct {
	Name       string    // e.g. events_p202510
	From, To   time.Time // the range it holds, [From, To)
	Estimated  int64     // rows, as estimated by the last ANALYZE (-1: never analysed)
	HistoryTab string    // the matching event_status_history partition
}

// Partitions lists the monthly partitions of events, oldest first.
func (s *Store) Partitions(ctx context.Context) ([]Partition, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.relname, c.reltuples::bigint
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.Name, &p.Estimated); err != nil {
			return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
		}
		m, ok := parsePartitionMonth("events", p.Name)
		if !ok {
			continue // the DEFAULT partition, or one made by hand
		}
		p.From, p.To = m, m.AddDate(0, 1, 0)
		p.HistoryTab = partitionName("event_status_history", m)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list partitions: %w", wrap(err))
	}
	slices.SortFunc(out, func(a, b Partition) int { return a.From.Compare(b.From) })
	return out, nil
}

// DropPartitionsBefore is retention: it drops every monthly partition of
// events, with its status history and the event_ids rows of its events,
// that lies entirely before cutoff (its month ends at or before cutoff),
// one month per transaction, oldest first, and returns the names of the
// dropped events partitions. Events in the DEFAULT partition are kept. A
// cutoff after now is refused, so a mistake cannot drop current data.
func (s *Store) DropPartitionsBefore(ctx context.Context, cutoff time.Time) ([]string, error) {
	if cutoff.After(time.Now()) {
		return nil, fmt.Errorf("postgres: retention cutoff %s is in the future", cutoff.UTC().Format(time.RFC3339))
	}
	parts, err := s.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, p := range parts {
		if p.To.After(cutoff) {
			break
		}
		ok, err := s.dropPartition(ctx, p)
		if err != nil {
			return dropped, fmt.Errorf("postgres: drop partition %s: %w", p.Name, wrap(err))
		}
		if ok {
			dropped = append(dropped, p.Name)
		}
	}
	return dropped, nil
}

// dropPartition drops p, its history partition and its ids in one
// transaction, under the partition lock so two replicas running retention
// at once do not trip over each other; ok is false if another one dropped
// it first.
func (s *Store) dropPartition(ctx context.Context, p Partition) (ok bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	schema, err := currentSchema(ctx, tx)
	if err != nil {
		return false, err
	}
	for _, q := range []string{`SET LOCAL statement_timeout = '30min'`, `SET LOCAL lock_timeout = '5s'`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("partitions", schema)); err != nil {
		return false, err
	}
	missing, err := missingPartitions(ctx, tx, []time.Time{p.From})
	if err != nil {
		return false, err
	}
	if missing[p.Name] {
		return false, nil
	}
	// Lock the partition first so nothing is added to it meanwhile; its
	// changes go before the DROPs, whose lock on events would hold every
	// read and write during the scan of changes (once a month).
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`LOCK TABLE %s IN SHARE MODE`, pq.QuoteIdentifier(p.Name))); err != nil {
		return false, err
	}
	// A chained store keeps the month's change rows, whose links the
	// later changes of their users follow, and says how far retention
	// went (migration 00009); an unchained one deletes them.
	forget, args := `DELETE FROM changes WHERE event_recorded_at >= $1 AND event_recorded_at < $2`, []any{p.From, p.To}
	if s.w.chain {
		forget, args = `INSERT INTO pruned_before (one, before) VALUES (1, $1) ON CONFLICT (one)
			DO UPDATE SET before = greatest(pruned_before.before, excluded.before)`, []any{p.To}
	}
	if _, err := tx.ExecContext(ctx, forget, args...); err != nil {
		return false, err
	}
	stmts := []string{
		fmt.Sprintf(`DELETE FROM event_ids WHERE id IN (SELECT id FROM %s)`, pq.QuoteIdentifier(p.Name)),
		fmt.Sprintf(`DROP TABLE IF EXISTS %s`, pq.QuoteIdentifier(p.HistoryTab)),
		fmt.Sprintf(`DROP TABLE %s`, pq.QuoteIdentifier(p.Name)),
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

// Maintain implements ports.Maintainer: it creates the partitions the next
// months need and, when retention > 0, drops the months that lie entirely
// before now - retention.
func (s *Store) Maintain(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	if err := s.EnsurePartitions(ctx, now); err != nil {
		return 0, err
	}
	if retention <= 0 {
		return 0, nil
	}
	dropped, err := s.DropPartitionsBefore(ctx, now.Add(-retention))
	return len(dropped), err
}
