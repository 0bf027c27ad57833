package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// allRecords reads every chain record of s.
func allRecords(t *testing.T, s *Store) []domain.ChainRecord {
	t.Helper()
	rs, err := s.ChainRecords(t.Context(), domain.ChangeFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("ChainRecords: %v", err)
	}
	return rs
}

// relinkAll recomputes every chain from rs and checks the stored links
// and s's heads against it.
func relinkAll(t *testing.T, s *Store, rs []domain.ChainRecord) {
	t.Helper()
	heads := map[int64]domain.ChainHead{}
	for _, r := range rs {
		h := heads[r.Entry.UserID]
		want := domain.Link(h.Link, r.Entry.Hash())
		if r.Link != want {
			t.Fatalf("change %d (%s of user %d): stored link %s, recomputed %s", r.Entry.Position, r.Entry.Kind, r.Entry.UserID, r.Link, want)
		}
		heads[r.Entry.UserID] = domain.ChainHead{UserID: r.Entry.UserID, Position: r.Entry.Position, Count: h.Count + 1, Link: want}
	}
	pos, got, err := s.ChainHeads(t.Context())
	if err != nil {
		t.Fatalf("ChainHeads: %v", err)
	}
	if len(rs) > 0 && pos != rs[len(rs)-1].Entry.Position {
		t.Errorf("ChainHeads at %d, the last change is %d", pos, rs[len(rs)-1].Entry.Position)
	}
	if len(got) != len(heads) {
		t.Fatalf("ChainHeads: %d users, recomputed %d", len(got), len(heads))
	}
	for _, h := range got {
		if h != heads[h.UserID] {
			t.Errorf("head of user %d = %+v, recomputed %+v", h.UserID, h, heads[h.UserID])
		}
	}
}

// With chaining off the feed works as before, and its changes carry no
// link, no digest and no head; turned on again, a user's chain starts
// after them.
func TestUnchained(t *testing.T) {
	ctx := t.Context()
	url := testenv.SQLiteURL(t)
	s := openURL(t, url, storage.Options{Unchained: true})
	base := domain.Normalize(time.Now())
	a := newEvent(1, "login", base)
	if _, _, err := s.Create(ctx, a, "me"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMany(ctx, []domain.Event{newEvent(1, "login", base.Add(time.Millisecond)), newEvent(2, "login", base.Add(2*time.Millisecond))}, "me"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusPending, domain.StatusDone, base.Add(time.Second), "me"); err != nil {
		t.Fatal(err)
	}
	if er, err := s.Erase(ctx, domain.Erasure{UserID: 2, By: "admin", At: base.Add(time.Minute)}); err != nil || er.Count != 1 {
		t.Fatalf("Erase = %+v, %v", er, err)
	}

	changes, err := s.Changes(ctx, domain.ChangeFilter{Limit: 100})
	if err != nil || len(changes) != 5 {
		t.Fatalf("Changes = %d changes, %v; want 5", len(changes), err)
	}
	rs := allRecords(t, s)
	if len(rs) != len(changes) {
		t.Fatalf("%d chain records, %d changes", len(rs), len(changes))
	}
	for i, r := range rs {
		if r.Entry.Position != changes[i].Position || r.Entry.Kind != changes[i].Kind {
			t.Errorf("record %d = %+v; the change %+v", i, r.Entry, changes[i])
		}
		if r.Link != (domain.Hash{}) || r.Digest != (domain.Hash{}) {
			t.Errorf("change %d: link %s, digest %s; want zero", r.Entry.Position, r.Link, r.Digest)
		}
	}
	if head, err := s.FeedHead(ctx); err != nil || head != 5 {
		t.Errorf("FeedHead = %d, %v; want 5", head, err)
	}
	if pos, heads, err := s.ChainHeads(ctx); err != nil || pos != 5 || len(heads) != 0 {
		t.Errorf("ChainHeads = %d, %+v, %v; want 5 and no heads", pos, heads, err)
	}
	v := domain.NewVerifier(nil, nil, true)
	for _, r := range rs {
		v.Add(r)
	}
	if res := v.Finish(0); res.OK || res.FirstBroken.Reason != domain.BreakUnchained || res.FirstBroken.Position != 1 {
		t.Errorf("verification = %+v; want unchained at 1", res)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openURL(t, url, storage.Options{})
	b := newEvent(2, "login", base.Add(time.Hour))
	if _, _, err := s.Create(ctx, b, "me"); err != nil {
		t.Fatal(err)
	}
	rs = allRecords(t, s)
	last := rs[len(rs)-1]
	if last.Entry.Position != 6 || last.Link != domain.Link(domain.Hash{}, last.Entry.Hash()) {
		t.Errorf("the first change chained = %+v; want position 6 linked after the zero link", last)
	}
	if _, heads, err := s.ChainHeads(ctx); err != nil || len(heads) != 1 || heads[0] != (domain.ChainHead{UserID: 2, Position: 6, Count: 1, Link: last.Link}) {
		t.Errorf("ChainHeads = %+v, %v", heads, err)
	}
}

// Migrating a store of version 7 links the changes it holds, in position
// order, as ChainRecords reads them: verification passes, the chains go
// on from there, and the migration goes down and up again.
func TestMigrateChainsExistingChanges(t *testing.T) {
	ctx := t.Context()
	s := testenv.OpenUnmigrated(t, func(ctx context.Context) (*Store, error) {
		return Open(ctx, testenv.SQLiteURL(t), storage.Options{})
	})
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w.DB, sub,
		goose.WithDisableGlobalRegistry(true), goose.WithGoMigrations(s.chainsMigration()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatalf("migrate to version 7: %v", err)
	}

	// What version 7 wrote: events with their changes, a status change, an
	// erasure, and an event retention removed.
	base := domain.Normalize(time.Now())
	var es []domain.Event
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := range 12 {
		e := newEvent(int64(1+i%3), fmt.Sprintf("act_%d", i%4), base.Add(time.Duration(i)*time.Millisecond))
		e.Metadata = fmt.Appendf(nil, `{"i":%d}`, i)
		es = append(es, e)
		exec(`INSERT INTO events (`+eventColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, eventArgs(nil, e)...)
		exec(`INSERT INTO changes (kind, event_id, user_id, at, status, updated_at) VALUES (?, ?, ?, ?, 'PENDING', ?)`,
			storage.KindRecorded, e.ID[:], e.UserID, micros(e.RecordedAt), micros(e.UpdatedAt))
	}
	at := micros(base.Add(time.Minute))
	for _, e := range es[:2] {
		exec(`UPDATE events SET status = 'DONE', updated_at = ? WHERE id = ?`, at, e.ID[:])
		exec(`INSERT INTO changes (kind, event_id, user_id, at, status, updated_at) VALUES (?, ?, ?, ?, 'DONE', ?)`,
			storage.KindStatus, e.ID[:], e.UserID, at, at)
	}
	er := domain.Erasure{UserID: 3, From: base, By: "admin", Count: 4, At: base.Add(time.Hour)}
	exec(`UPDATE events SET metadata = '{}' WHERE user_id = 3`)
	exec(`INSERT INTO changes (kind, event_id, user_id, at, status, updated_at, detail) VALUES (?, ?, ?, ?, '', ?, ?)`,
		storage.KindErased, make([]byte, 16), er.UserID, micros(er.At), micros(er.At), storage.ErasureDetail(er))
	exec(`DELETE FROM events WHERE id = ?`, es[1].ID[:])

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	rs := allRecords(t, s)
	if len(rs) != 15 {
		t.Fatalf("%d chain records, want 15", len(rs))
	}
	gone := 0
	for _, r := range rs {
		if r.Gone {
			gone++
		}
	}
	if gone != 2 {
		t.Errorf("%d records of a gone event, want 2", gone)
	}
	relinkAll(t, s, rs)
	v := domain.NewVerifier(nil, nil, true)
	for _, r := range rs {
		v.Add(r)
	}
	if res := v.Finish(0); !res.OK || res.Users != 3 {
		t.Fatalf("verification after the migration = %+v", res)
	}

	// New changes go on from the heads the migration stored.
	if _, err := s.CreateMany(ctx, []domain.Event{newEvent(1, "login", base.Add(2*time.Hour)), newEvent(4, "login", base.Add(2*time.Hour))}, "me"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, es[0].ID, domain.StatusDone, domain.StatusInProgress, base.Add(3*time.Hour), "me"); err != nil {
		t.Fatal(err)
	}
	relinkAll(t, s, allRecords(t, s))

	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("migrate down to 7: %v", err)
	}
	var left int
	if err := s.w.GetContext(ctx, &left, `SELECT (SELECT count(*) FROM pragma_table_info('changes') WHERE name IN ('digest', 'link'))
		+ (SELECT count(*) FROM sqlite_schema WHERE name IN ('chain_heads', 'checkpoints'))`); err != nil || left != 0 {
		t.Fatalf("after going down: %d columns and tables of version 8 left, %v", left, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
	relinkAll(t, s, allRecords(t, s))
}

// A checkpoint of no users keeps its leaves: none, not "not kept".
func TestCheckpointWithoutLeaves(t *testing.T) {
	s := openTemp(t, storage.Options{})
	ctx := t.Context()
	c := domain.Checkpoint{Position: 0, At: domain.Normalize(time.Now()), KeyID: "k", Signature: []byte("s")}
	if err := s.SaveCheckpoint(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.CheckpointLeaves(ctx, 0); err != nil || len(ls) != 0 {
		t.Errorf("CheckpointLeaves = %+v, %v; want none, nil", ls, err)
	}
	if err := s.SaveCheckpoint(ctx, c, nil); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("the same position again: %v, want ErrConflict", err)
	}
}
