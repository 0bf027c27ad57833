package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	_ "github.com/activityd/activityd/adapters/storage/postgres"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// Verify throughput knob (environment), for `make bench-verify`'s full size.
const verifyEventsVar = "VERIFY_EVENTS" // events seeded (default 20000; make bench-verify: 1000000)

// TestVerifyThroughput is issue 18's measure of `activityd verify`: the
// real binary verifies every chain of a PostgreSQL store of VERIFY_EVENTS
// events over 1000 users (batches of 1000, a status change for every
// tenth), against a checkpoint, and reports events/s. It asserts what
// verify found, never how fast it was.
func TestVerifyThroughput(t *testing.T) {
	n := envInt(t, verifyEventsVar, 20000, 1000, 100_000_000)
	url, _ := testenv.PostgresSchema(t)
	ctx := context.Background()
	st, err := storage.Open(ctx, url, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	base := domain.Normalize(time.Now().Add(-time.Hour))
	seeded := time.Now()
	changes := 0
	for start := 0; start < n; start += 1000 {
		batch := make([]domain.Event, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			at := base.Add(time.Duration(i) * time.Microsecond)
			batch = append(batch, domain.Event{ID: domain.NewID(at), UserID: int64(1 + i%1000), Action: "login",
				Status: domain.StatusPending, OccurredAt: at, RecordedAt: at, UpdatedAt: at,
				Metadata: []byte(fmt.Sprintf(`{"device":"bench","seq":%d}`, i))})
		}
		if _, err := st.CreateMany(ctx, batch, "seed"); err != nil {
			t.Fatal(err)
		}
		changes += len(batch)
		for i := 0; i < len(batch); i += 10 {
			if _, err := st.SetStatus(ctx, batch[i].ID, domain.StatusPending, domain.StatusInProgress, batch[i].RecordedAt.Add(time.Second), "seed"); err != nil {
				t.Fatal(err)
			}
			changes++
		}
	}
	t.Logf("seeded %d events (%d changes) in %v", n, changes, time.Since(seeded).Round(time.Millisecond))

	dir := t.TempDir()
	env := []string{"DATABASE_URL=" + url, "CHECKPOINT_KEY_FILE=" + filepath.Join(dir, "k"), "CHECKPOINT_SINKS=dir:" + filepath.Join(dir, "cps")}
	if out, errOut, code := binary.Run(t, dir, env, "checkpoint"); code != 0 {
		t.Fatalf("checkpoint: exit %d: %s%s", code, out, errOut)
	}
	began := time.Now()
	out, errOut, code := binary.Run(t, dir, env, "verify", "--progress=off")
	took := time.Since(began)
	var res struct {
		OK         bool  `json:"ok"`
		Checked    int64 `json:"checked"`
		Users      int   `json:"users"`
		Checkpoint int64 `json:"checkpoint"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.OK || res.Checked != int64(changes) || res.Users != min(n, 1000) ||
		res.Checkpoint != int64(changes) {
		t.Fatalf("verify: exit %d: %s%s", code, out, errOut)
	}
	t.Logf("activityd verify: %d changes of %d events over %d users in %v: %.0f changes/s (the process: start, migrate check, read, hash)",
		res.Checked, n, res.Users, took.Round(time.Millisecond), float64(res.Checked)/took.Seconds())
}
