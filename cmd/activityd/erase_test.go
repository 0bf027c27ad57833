package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/adapters/storage/sqlite"
	"github.com/activityd/activityd/domain"
)

// TestEraseCommand: activityd erase erases one user's metadata in the
// store DATABASE_URL names, records the erasure in the feed, and refuses a
// bad flag with status 2 before touching anything.
func TestEraseCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "erase.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := domain.Normalize(time.Now())
	mine := domain.Event{ID: domain.NewID(now), UserID: 42, Action: "login", Status: domain.StatusPending,
		RecordedAt: now, OccurredAt: now, UpdatedAt: now, Metadata: []byte(`{"ip":"10.0.0.1"}`)}
	theirs := mine
	theirs.ID, theirs.UserID = domain.NewID(now.Add(time.Microsecond)), 43
	if _, err := st.CreateMany(ctx, []domain.Event{mine, theirs}, "t"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	env := map[string]string{"DATABASE_URL": db}

	if code, _, stderr := runCLI(t, env, "erase", "--user", "42", "--from", "yesterday"); code != 2 || !strings.Contains(stderr, "--from") {
		t.Errorf("a bad --from: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "erase"); code != 2 || !strings.Contains(stderr, "--user") {
		t.Errorf("no --user: exit %d, %s", code, stderr)
	}
	// A bad flag stops before any store is opened or created.
	absent := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "absent.db")}
	if code, _, stderr := runCLI(t, absent, "erase", "--user", "abc"); code != 2 || strings.Contains(stderr, "creating") {
		t.Errorf("--user abc: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(strings.TrimPrefix(absent["DATABASE_URL"], "sqlite:")); !os.IsNotExist(err) {
		t.Errorf("a bad flag created the store: %v", err)
	}
	code, stdout, stderr := runCLI(t, env, "erase", "--user", "42")
	if code != 0 || !strings.Contains(stdout, "user 42: the metadata of 1 events erased") {
		t.Fatalf("erase: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI(t, env, "erase", "--user", "42"); code != 0 || !strings.Contains(stdout, "of 0 events") {
		t.Errorf("erase again: exit %d, %s", code, stdout)
	}

	st, err = sqlite.Open(ctx, db, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		id   domain.ID
		want string
	}{{mine.ID, "{}"}, {theirs.ID, `{"ip":"10.0.0.1"}`}} {
		e, err := st.Get(ctx, c.id)
		if err != nil || string(e.Metadata) != c.want {
			t.Errorf("event %s: %s, %v; want %s", c.id, e.Metadata, err, c.want)
		}
	}
	cs, err := st.Changes(ctx, domain.ChangeFilter{UserID: 42, Limit: 10})
	if err != nil || len(cs) != 2 || cs[1].Erasure == nil || cs[1].Erasure.By != "cli:erase" || cs[1].Erasure.Count != 1 {
		t.Errorf("user 42's feed: %+v, %v; want the event and the erasure by cli:erase", cs, err)
	}
}
