package postgres

import (
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// TestMigrateChainsExisting: a store of version 8 with a feed that
// retention thinned the old way (a month's changes deleted with their
// events, leaving holes, one at the end) is chained by migration 9 as it
// stands: every change that remains is linked, the holes become unchained
// tombstones, and the whole feed verifies; writes after it chain on.
func TestMigrateChainsExisting(t *testing.T) {
	ctx := t.Context()
	url, _ := testenv.PostgresSchema(t)
	s := openStore(t, url, testPool)
	if err := s.migrate(ctx, 8); err != nil {
		t.Fatalf("migrate to version 8: %v", err)
	}
	now := domain.Normalize(time.Now())
	if err := s.EnsurePartitions(ctx, now); err != nil {
		t.Fatal(err)
	}
	// Six changes: recorded 1..4 (users 1, 2, 1, 2), a status change of
	// the first (5), an erasure of user 2 (6); then "retention" removes
	// event 3 with its change, and change 6's row (the feed's end).
	var ids []domain.ID
	for i := range 4 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		id := domain.NewID(at)
		ids = append(ids, id)
		if _, err := s.db.ExecContext(ctx, `INSERT INTO events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata, created_by)
			VALUES ($1, $2, 'login', 'PENDING', $3, $3, $3, '{"n":1}', 't')`, id.String(), 1+i%2, at); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
			VALUES ($1, 1, $2, $3, $4, $3, 'PENDING', $3)`, i+1, id.String(), at, 1+i%2); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Second)
	if _, err := s.db.ExecContext(ctx, `UPDATE events SET status = 'IN_PROGRESS', updated_at = $2 WHERE id = $1`, ids[0].String(), later); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
			VALUES (5, 2, '` + ids[0].String() + `', $1, 1, $2, 'IN_PROGRESS', $2)`,
		`INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, detail)
			SELECT 6, 3, '00000000-0000-0000-0000-000000000000', $2, 2, $2, '', $2, '{"by":"x","count":0}' WHERE $1::timestamptz IS NOT NULL`,
		`UPDATE feed_head SET last = 6 WHERE $1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL`,
		`DELETE FROM events WHERE id = '` + ids[2].String() + `' AND $1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL`,
		`DELETE FROM changes WHERE position IN (3, 6) AND $1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL`,
	} {
		if _, err := s.db.ExecContext(ctx, q, now, later); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate to the latest version: %v", err)
	}
	if res := verifyStore(t, s); !res.OK || res.Checked != 6 || res.Pruned != 2 {
		t.Fatalf("verification after the upgrade: %+v, first broken %+v; want ok over 6 changes, the 2 holes pruned", res, res.FirstBroken)
	}
	// Writes chain on from the heads the migration stored.
	at := now.Add(2 * time.Second)
	e := domain.Event{ID: domain.NewID(at), UserID: 1, Action: "login", Status: domain.StatusPending,
		OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte(`{}`)}
	if _, _, err := s.Create(ctx, e, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, ids[1], domain.StatusPending, domain.StatusInProgress, at, "t"); err != nil {
		t.Fatal(err)
	}
	if res := verifyStore(t, s); !res.OK || res.Checked != 8 {
		t.Fatalf("verification after new writes: %+v, first broken %+v", res, res.FirstBroken)
	}
}
