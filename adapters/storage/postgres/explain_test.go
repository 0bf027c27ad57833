package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

// loadEvents fills events (and event_ids) with n rows spread evenly over
// [from, to): user 1 has a fifth of them, users 2..2001 share the rest;
// seven actions and three statuses; occurred_at up to an hour before
// recorded_at.
func loadEvents(ctx context.Context, t testing.TB, s *Store, n int, from, to time.Time) {
	t.Helper()
	step := to.Sub(from) / time.Duration(n)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	for _, q := range []struct {
		what, sql string
		args      []any
	}{
		{"statement timeout", `SET LOCAL statement_timeout = 0`, nil},
		{"events", `
		INSERT INTO events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata)
		SELECT gen_random_uuid(),
		       CASE WHEN g % 5 = 0 THEN 1 ELSE 2 + g % 2000 END,
		       (ARRAY['login','logout','upload_file','created','updated','deleted','viewed'])[1 + (g / 5) % 7],
		       (ARRAY['PENDING','IN_PROGRESS','DONE'])[1 + (g / 3) % 3],
		       ts - make_interval(secs => g % 3600), ts, ts,
		       jsonb_build_object('n', g)
		FROM generate_series(0, $1::int - 1) AS g,
		     LATERAL (SELECT $2::timestamptz + g * make_interval(secs => $3::float8) AS ts) AS x`,
			[]any{n, from, step.Seconds()}},
		{"event_ids", `INSERT INTO event_ids (id, recorded_at) SELECT id, recorded_at FROM events ON CONFLICT DO NOTHING`, nil},
		{"history", `
		INSERT INTO event_status_history (event_id, event_recorded_at, to_status, at, changed_by)
		SELECT id, recorded_at, 'PENDING', recorded_at, 'load' FROM events`, nil},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("load %s: %v", q.what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("load: %v", err)
	}
}

// planNode is the part of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

// seqScans returns the relations of rel's family read by a Seq Scan.
func (p planNode) seqScans(prefixes ...string) []string {
	var out []string
	if p.NodeType == "Seq Scan" {
		for _, pre := range prefixes {
			if strings.HasPrefix(p.RelationName, pre) {
				out = append(out, p.RelationName)
				break
			}
		}
	}
	for _, c := range p.Plans {
		out = append(out, c.seqScans(prefixes...)...)
	}
	return out
}

// explain returns the plan PostgreSQL makes for query with args bound (a
// custom plan, as for an unprepared statement).
func explain(ctx context.Context, t *testing.T, s *Store, query string, args ...any) (planNode, string) {
	t.Helper()
	var raw string
	if err := s.db.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&raw); err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	return parsePlan(t, raw), raw
}

// explainGeneric returns the generic plan of query prepared on conn (which
// runs with plan_cache_mode = force_generic_plan): the plan a prepared
// statement of the cache may settle on, made without knowing the values.
func explainGeneric(ctx context.Context, t *testing.T, conn *sql.Conn, query string, args ...any) (planNode, string) {
	t.Helper()
	lits := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int:
			lits[i] = strconv.Itoa(v)
		case int64:
			lits[i] = strconv.FormatInt(v, 10)
		case bool:
			lits[i] = strconv.FormatBool(v)
		case string:
			lits[i] = pq.QuoteLiteral(v)
		case time.Time:
			lits[i] = pq.QuoteLiteral(v.UTC().Format(time.RFC3339Nano))
		case driver.Valuer:
			dv, err := v.Value()
			if err != nil {
				t.Fatal(err)
			}
			lits[i] = pq.QuoteLiteral(dv.(string))
		default:
			t.Fatalf("cannot render %T as a literal", a)
		}
	}
	if _, err := conn.ExecContext(ctx, "PREPARE p AS "+query); err != nil {
		t.Fatalf("PREPARE %s: %v", query, err)
	}
	defer conn.ExecContext(ctx, "DEALLOCATE p") //nolint:errcheck
	execute := "EXECUTE p"
	if len(lits) > 0 {
		execute += "(" + strings.Join(lits, ", ") + ")"
	}
	var raw string
	if err := conn.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+execute).Scan(&raw); err != nil {
		t.Fatalf("EXPLAIN %s: %v", execute, err)
	}
	return parsePlan(t, raw), raw
}

func parsePlan(t *testing.T, raw string) planNode {
	t.Helper()
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil || len(out) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", raw, err)
	}
	return out[0].Plan
}

// TestListUsesIndexes loads 120k events over ten months (partitions and
// the DEFAULT partition), ANALYZEs, then EXPLAINs every List shape the
// adapter generates and the by-id statements, and fails on any Seq Scan of
// events, its partitions, event_ids or the history.
func TestListUsesIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 120k rows")
	}
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().UTC()
	cur := monthStart(now)
	// Partitions for six months back to three back; the two months before
	// the current one have none, so their rows land in DEFAULT.
	if err := s.EnsurePartitions(ctx, cur.AddDate(0, -6, 0)); err != nil {
		t.Fatal(err)
	}
	from, to := cur.AddDate(0, -6, 0), cur.AddDate(0, PartitionsAhead+1, 0)
	const rows = 120_000
	loadEvents(ctx, t, s, rows, from, to)
	if _, err := s.db.ExecContext(ctx, "ANALYZE events; ANALYZE event_ids; ANALYZE event_status_history"); err != nil {
		t.Fatal(err)
	}
	var total int
	if err := s.db.GetContext(ctx, &total, "SELECT count(*) FROM events"); err != nil || total != rows {
		t.Fatalf("loaded %d rows, %v; want %d", total, err, rows)
	}
	var inDefault int
	if err := s.db.GetContext(ctx, &inDefault, "SELECT count(*) FROM events_default"); err != nil || inDefault == 0 {
		t.Fatalf("DEFAULT partition holds %d rows (%v); the test wants some there", inDefault, err)
	}

	// The detector itself: a filter no index serves must be caught.
	if plan, raw := explain(ctx, t, s, `SELECT id FROM events WHERE metadata->>'n' = '5'`); len(plan.seqScans("events")) == 0 {
		t.Fatalf("the Seq Scan detector missed an unindexed filter: %s", raw)
	}

	mid := from.Add(to.Sub(from) / 2)
	cursorID := domain.NewID(mid)
	var filters []domain.Filter
	for _, user := range []int64{0, 7, 1} { // every user, a light one, the heavy one
		for _, actions := range [][]domain.Action{nil, {"login"}, {"login", "deleted"}, domain.DefaultActions} {
			for _, status := range []domain.Status{"", domain.StatusDone} {
				for _, rng := range []string{"", "from-to", "from", "to"} {
					for _, field := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
						for _, order := range []domain.Order{domain.Desc, domain.Asc} {
							for _, withCursor := range []bool{false, true} {
								f := domain.Filter{UserID: user, Actions: actions, Status: status, TimeField: field, Order: order, Limit: 50}
								switch rng {
								case "from-to":
									f.From, f.To = cur.AddDate(0, -3, 10), cur.AddDate(0, 1, 5)
								case "from":
									f.From = cur.AddDate(0, -1, 0)
								case "to":
									f.To = cur.AddDate(0, -2, 0)
								}
								if withCursor {
									f.After = &domain.Cursor{Time: mid, ID: cursorID, TimeField: field, Order: order}
								}
								filters = append(filters, f)
							}
						}
					}
				}
			}
		}
	}
	// The predecessors' offset paging and the largest page.
	filters = append(filters,
		domain.Filter{UserID: 7, TimeField: domain.ByRecordedAt, Order: domain.Desc, Limit: 20, Offset: 40},
		domain.Filter{UserID: 1, TimeField: domain.ByRecordedAt, Order: domain.Desc, Limit: 1000},
		domain.Filter{TimeField: domain.ByOccurredAt, Order: domain.Asc, Limit: 1000},
	)

	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	shapes := map[string]bool{}
	for _, f := range filters {
		q := buildList(f)
		plan, raw := explain(ctx, t, s, q.sql, q.args...)
		if seq := plan.seqScans("events"); len(seq) > 0 {
			t.Errorf("filter %s: Seq Scan on %v\nSQL: %s\nplan: %s", describe(f), seq, q.sql, raw)
		}
		if shapes[q.sql] {
			continue
		}
		shapes[q.sql] = true
		plan, raw = explainGeneric(ctx, t, conn, q.sql, q.args...)
		if seq := plan.seqScans("events"); len(seq) > 0 {
			t.Errorf("filter %s, generic plan: Seq Scan on %v\nSQL: %s\nplan: %s", describe(f), seq, q.sql, raw)
		}
	}
	t.Logf("%d filters EXPLAINed with their values, and the generic plans of the %d statement shapes, over %d rows",
		len(filters), len(shapes), rows)

	// The statements that address one event by id.
	id := domain.NewID(now).String()
	byID := map[string]struct {
		sql  string
		args []any
	}{
		"get":        {getSQL, []any{id, now}},
		"history":    {historySQL, []any{id, now}},
		"set status": {chainedSQL.setStatus, []any{id, "PENDING", "IN_PROGRESS", now, "x", now}},
		"create":     {chainedSQL.create, []any{id, 1, "login", "PENDING", now, now, now, "{}", "x", now, false}},
	}
	// A batch of 1000, half of it already stored, and the re-read of ids
	// taken concurrently.
	var existing []string
	if err := s.db.SelectContext(ctx, &existing, `SELECT id::text FROM events ORDER BY random() LIMIT 500`); err != nil {
		t.Fatal(err)
	}
	var batch [9]pq.StringArray
	users := pq.Int64Array{}
	for i := range 1000 {
		bid := domain.NewID(now).String()
		if i%2 == 0 {
			bid = existing[i/2]
		}
		ts := pgTimeText(now)
		for k, v := range []string{bid, "", "login", "PENDING", ts, ts, ts, "{}", "x"} {
			batch[k] = append(batch[k], v)
		}
		users = append(users, int64(1+i))
	}
	byID["create many"] = struct {
		sql  string
		args []any
	}{chainedSQL.createManyFeed, []any{batch[0], users, batch[2], batch[3], batch[4], batch[5], batch[6], batch[7], batch[8], nullableArray(batch[5])}}
	byID["read many"] = struct {
		sql  string
		args []any
	}{readManySQL, []any{pq.StringArray(existing), make(nullableArray, len(existing))}}
	for name, q := range byID {
		plan, raw := explain(ctx, t, s, q.sql, q.args...)
		if seq := plan.seqScans("events", "event_ids", "event_status_history"); len(seq) > 0 {
			t.Errorf("%s: Seq Scan on %v\nplan: %s", name, seq, raw)
		}
		plan, raw = explainGeneric(ctx, t, conn, q.sql, q.args...)
		if seq := plan.seqScans("events", "event_ids", "event_status_history"); len(seq) > 0 {
			t.Errorf("%s, generic plan: Seq Scan on %v\nplan: %s", name, seq, raw)
		}
	}
}

func describe(f domain.Filter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "user=%d actions=%v status=%q field=%s order=%s", f.UserID, f.Actions, f.Status, f.TimeField, f.Order)
	if !f.From.IsZero() {
		fmt.Fprintf(&b, " from=%s", f.From.Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		fmt.Fprintf(&b, " to=%s", f.To.Format(time.RFC3339))
	}
	if f.After != nil {
		b.WriteString(" cursor")
	}
	if f.Offset > 0 {
		fmt.Fprintf(&b, " offset=%d", f.Offset)
	}
	fmt.Fprintf(&b, " limit=%d", f.Limit)
	return b.String()
}
