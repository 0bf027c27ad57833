package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// TestMigrateUpgradesPopulatedV1 fills a schema of version 1 the way the
// version-1 adapter wrote it (every id in event_ids, a stored initial
// history entry, jsonb metadata), migrates it in place, and checks that
// every event reads back as before, with metadata in the canonical form;
// then rolls back to version 1 and up again.
func TestMigrateUpgradesPopulatedV1(t *testing.T) {
	ctx := t.Context()
	url, _ := testenv.PostgresSchema(t)
	s := openStore(t, url, testPool)
	if err := s.migrate(ctx, 1); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	now := time.Now().UTC()
	if err := s.EnsurePartitions(ctx, now); err != nil {
		t.Fatal(err)
	}
	// 2,500 events over 50 users (more than one round of the rewrite), as
	// version 1's createSQL stored them; every third moved on to
	// IN_PROGRESS. Metadata as clients sent it, which jsonb reorders and
	// respaces.
	const n = 2500
	if _, err := s.db.ExecContext(ctx, `
		WITH src AS (
		    SELECT gen_random_uuid() AS id, g,
		           date_trunc('milliseconds', $1::timestamptz) - g * interval '1 second' AS ts
		    FROM generate_series(1, $2::int) g
		), ids AS (
		    INSERT INTO event_ids (id, recorded_at) SELECT id, ts FROM src
		), ev AS (
		    INSERT INTO events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata)
		    SELECT id, 1 + g % 50, 'login', CASE WHEN g % 3 = 0 THEN 'IN_PROGRESS' ELSE 'PENDING' END,
		           ts - interval '1 minute', ts, ts + CASE WHEN g % 3 = 0 THEN interval '5 seconds' ELSE interval '0' END,
		           CASE WHEN g % 7 = 0 THEN '{}'::jsonb
		                ELSE ('{"zeta": ' || g || ', "a": "x<y & z", "nested": {"b": [1, 2.50, 1e2], "a": null}}')::jsonb END
		    FROM src
		)
		INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
		SELECT id, ts, NULL, 'PENDING', ts, 'token:v1' FROM src`,
		now, n); err != nil {
		t.Fatalf("populate version 1: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
		SELECT id, recorded_at, 'PENDING', 'IN_PROGRESS', updated_at, 'token:v1' FROM events WHERE status = 'IN_PROGRESS'`); err != nil {
		t.Fatalf("populate version 1: %v", err)
	}
	type v1Event struct {
		id       domain.ID
		g        int
		metadata json.RawMessage // canonical form of what the client sent
	}
	var sample []v1Event
	rows, err := s.db.QueryContext(ctx, `SELECT e.id::text, e.user_id, e.status, e.metadata::text FROM events e ORDER BY recorded_at DESC LIMIT 30`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			id, status, md string
			user           int64
		)
		if err := rows.Scan(&id, &user, &status, &md); err != nil {
			t.Fatal(err)
		}
		eid, err := domain.ParseID(id)
		if err != nil {
			t.Fatal(err)
		}
		canon, err := domain.CanonicalObject([]byte(md))
		if err != nil {
			t.Fatal(err)
		}
		sample = append(sample, v1Event{id: eid, metadata: canon, g: map[string]int{"PENDING": 1, "IN_PROGRESS": 2}[status]})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	check := func(stage string) {
		t.Helper()
		var spaced int
		if err := s.db.GetContext(ctx, &spaced, `SELECT count(*) FROM events WHERE metadata::text LIKE '%": %'`); err != nil {
			t.Fatal(err)
		}
		if spaced != 0 {
			t.Errorf("%s: %d rows still hold jsonb's rendering", stage, spaced)
		}
		for _, v := range sample {
			e, err := s.Get(ctx, v.id)
			if err != nil {
				t.Fatalf("%s: Get %s: %v", stage, v.id, err)
			}
			if string(e.Metadata) != string(v.metadata) {
				t.Errorf("%s: metadata of %s = %s, want %s", stage, v.id, e.Metadata, v.metadata)
			}
			h, err := s.History(ctx, v.id)
			if err != nil {
				t.Fatalf("%s: History %s: %v", stage, v.id, err)
			}
			if len(h) < v.g || h[0].From != "" || h[0].To != domain.StatusPending || h[0].By != "token:v1" || !h[0].At.Equal(e.RecordedAt) {
				t.Errorf("%s: history of %s = %+v, want %d entries from the initial PENDING", stage, v.id, h, v.g)
			}
		}
		var total int
		if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM events`); err != nil || total < n {
			t.Errorf("%s: %d events, %v; want at least %d", stage, total, err, n)
		}
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate a populated version 1: %v", err)
	}
	if v, err := s.Version(ctx); err != nil || v != migrationCount(t) {
		t.Fatalf("Version = %d, %v; want %d", v, err, migrationCount(t))
	}
	check("upgraded")

	// An upgraded event moves on, and its history grows behind the stored
	// entries; a new event gets a derived initial entry.
	moved := sample[1] // PENDING (its status decides g)
	for _, v := range sample {
		if v.g == 1 {
			moved = v
			break
		}
	}
	if _, err := s.SetStatus(ctx, moved.id, domain.StatusPending, domain.StatusInProgress, now.Add(time.Minute), "token:v2"); err != nil {
		t.Fatalf("SetStatus on an upgraded event: %v", err)
	}
	if h, err := s.History(ctx, moved.id); err != nil || len(h) != 2 || h[1].By != "token:v2" {
		t.Errorf("history after a transition = %+v, %v", h, err)
	}
	fresh := mkEvent(3, "login", now)
	if _, created, err := s.Create(ctx, fresh, "token:new"); err != nil || !created {
		t.Fatalf("Create after the upgrade: %v %v", created, err)
	}
	// List reads the upgraded rows in the canonical form too.
	page, err := s.List(ctx, domain.Filter{UserID: 1, TimeField: domain.ByRecordedAt, Order: domain.Desc, Limit: 50})
	if err != nil || len(page.Events) != 50 {
		t.Fatalf("List after the upgrade: %d events, %v", len(page.Events), err)
	}
	for _, e := range page.Events {
		if canon, err := domain.CanonicalObject(e.Metadata); err != nil || string(canon) != string(e.Metadata) {
			t.Errorf("listed metadata %s is not canonical (%v)", e.Metadata, err)
		}
	}

	// Down to version 1 and up again: the derived entries are stored on the
	// way down, in order, and nothing is lost either way.
	if err := s.migrate(ctx, 1); err != nil {
		t.Fatalf("roll back to version 1: %v", err)
	}
	var typ string
	if err := s.db.GetContext(ctx, &typ, `SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'metadata'`); err != nil || typ != "jsonb" {
		t.Errorf("metadata is %q after the roll back (%v), want jsonb", typ, err)
	}
	var h []struct {
		To string `db:"to_status"`
		By string `db:"changed_by"`
	}
	if err := s.db.SelectContext(ctx, &h, `SELECT to_status, changed_by FROM event_status_history WHERE event_id = $1::uuid ORDER BY seq`, fresh.ID.String()); err != nil || len(h) != 1 || h[0].By != "token:new" {
		t.Errorf("version-1 history of an event created under version 2 = %+v, %v", h, err)
	}
	if err := s.Migrate(context.WithoutCancel(ctx)); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	check("up again")
	if got, err := s.Get(ctx, fresh.ID); err != nil || string(got.Metadata) != string(fresh.Metadata) {
		t.Errorf("Get of the event created under version 2, after down and up: %+v, %v", got, err)
	}
	if hist, err := s.History(ctx, fresh.ID); err != nil || len(hist) != 1 || hist[0].By != "token:new" {
		t.Errorf("its history after down and up = %+v, %v", hist, err)
	}
}
