package app_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
)

// evidenceStore lets a test act between a verification's reads.
type evidenceStore struct {
	*memory.Store
	afterHead   func()               // run once, after the first FeedHead
	checkpoints func() bool          // false: Checkpoints answers none (deleted)
	pages       int                  // ChainRecords calls
	onPage      func(page int) error // before each ChainRecords call
}

func (s *evidenceStore) FeedHead(ctx context.Context) (int64, error) {
	h, err := s.Store.FeedHead(ctx)
	if f := s.afterHead; f != nil {
		s.afterHead = nil
		f()
	}
	return h, err
}

func (s *evidenceStore) Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error) {
	if s.checkpoints != nil && !s.checkpoints() {
		return []domain.Checkpoint{}, nil
	}
	return s.Store.Checkpoints(ctx, before, limit)
}

func (s *evidenceStore) ChainRecords(ctx context.Context, f domain.ChangeFilter) ([]domain.ChainRecord, error) {
	s.pages++
	if s.onPage != nil {
		if err := s.onPage(s.pages); err != nil {
			return nil, err
		}
	}
	return s.Store.ChainRecords(ctx, f)
}

func seedEvents(t *testing.T, st *memory.Store, n int) []domain.Event {
	t.Helper()
	now := domain.Normalize(time.Now())
	var es []domain.Event
	for i := range n {
		at := now.Add(time.Duration(i) * time.Microsecond)
		e := domain.Event{ID: domain.NewID(at), UserID: int64(1 + i%3), Action: "login", Status: domain.StatusPending,
			OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte(fmt.Sprintf(`{"i":%d}`, i))}
		if _, _, err := st.Create(context.Background(), e, "t"); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

func newTestEvidence(t *testing.T, st app.EvidenceStore, sinks ...ports.CheckpointSink) *app.Evidence {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return app.NewEvidence(st, app.EvidenceConfig{Key: key, Sinks: sinks, Clock: ports.SystemClock})
}

// A verification of a live store: a status change and an erasure
// committed after the walk began show in the records read later (events
// as they are now); the walk reaches the changes that explain them, so
// they are no false alarm.
func TestVerifyWhileWritten(t *testing.T) {
	ctx := context.Background()
	mem := stores.Memory(t)
	es := seedEvents(t, mem, 30)
	st := &evidenceStore{Store: mem}
	ev := newTestEvidence(t, st)
	if _, err := ev.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	st.afterHead = func() {
		if _, err := mem.SetStatus(ctx, es[2].ID, domain.StatusPending, domain.StatusInProgress, time.Now(), "t"); err != nil {
			t.Fatal(err)
		}
		if _, err := mem.Erase(ctx, domain.Erasure{UserID: es[4].UserID, By: "t", At: domain.Normalize(time.Now())}); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []int64{0, es[2].UserID, es[4].UserID} {
		res, err := ev.Verify(ctx, app.VerifyOptions{UserID: user, Page: 7})
		if err != nil || !res.OK {
			t.Fatalf("verify (user %d) while written: %+v, %v (first broken %+v)", user, res, err, res.FirstBroken)
		}
	}
}

// A checkpoint this process signed, gone from the database, is reported:
// verifying against an older one (or none) would hide what it covered.
func TestVerifyNoticesDeletedCheckpoints(t *testing.T) {
	ctx := context.Background()
	mem := stores.Memory(t)
	seedEvents(t, mem, 5)
	deleted := false
	st := &evidenceStore{Store: mem, checkpoints: func() bool { return !deleted }}
	ev := newTestEvidence(t, st)
	sg, err := ev.Checkpoint(ctx)
	if err != nil || !sg.New {
		t.Fatalf("checkpoint: %+v, %v", sg, err)
	}
	if res, err := ev.Verify(ctx, app.VerifyOptions{}); err != nil || !res.OK || res.Checkpoint != 5 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	deleted = true
	res, err := ev.Verify(ctx, app.VerifyOptions{})
	if err != nil || res.OK || res.FirstBroken == nil || res.FirstBroken.Reason != domain.BreakRewritten || res.FirstBroken.Position != 5 {
		t.Fatalf("verify with the checkpoint deleted: %+v, %v; want rewritten at 5", res, err)
	}
	if res, err := ev.Integrity(ctx, domain.Principal{Name: "a", Scopes: []domain.Scope{domain.ScopeAdmin}}, "1"); err != nil || res.OK {
		t.Fatalf("integrity with the checkpoint deleted: %+v, %v", res, err)
	}
}

// flakySink fails its first n writes.
type flakySink struct {
	n    int
	puts []int64
}

func (f *flakySink) Name() string { return "flaky" }
func (f *flakySink) Put(_ context.Context, c domain.Checkpoint, _ []domain.ChainHead) error {
	if f.n > 0 {
		f.n--
		return errors.New("down")
	}
	f.puts = append(f.puts, c.Position)
	return nil
}

// A sink down at one checkpoint gets it at the next call, even when
// there is nothing new to sign; one that took it is not written again.
func TestCheckpointRetriesFailedSinks(t *testing.T) {
	ctx := context.Background()
	mem := stores.Memory(t)
	seedEvents(t, mem, 3)
	sink := &flakySink{n: 1}
	ev := newTestEvidence(t, mem, sink)
	sg, err := ev.Checkpoint(ctx)
	if err != nil || !sg.New || sg.Failed["flaky"] == "" {
		t.Fatalf("first checkpoint: %+v, %v; want it signed and the sink failed", sg, err)
	}
	sg, err = ev.Checkpoint(ctx)
	if err != nil || sg.New || len(sg.Written) != 1 || sg.Written[0] != "flaky" || len(sink.puts) != 1 || sink.puts[0] != 3 {
		t.Fatalf("second call: %+v, %v, puts %v; want checkpoint 3 written to the sink that failed", sg, err, sink.puts)
	}
	if sg, err = ev.Checkpoint(ctx); err != nil || len(sg.Written) != 0 || len(sink.puts) != 1 {
		t.Fatalf("third call: %+v, %v, puts %v; want nothing written again", sg, err, sink.puts)
	}
}
