package checkpoint

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/activityd/activityd/domain"
)

func TestNewDirCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "checkpoints")
	d, err := NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory made: %v, %v; want a directory with mode 0700", fi.Mode(), err)
	}
	if d.Name() != "dir:"+path {
		t.Fatalf("Name() = %q", d.Name())
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDir(notDir); err == nil {
		t.Fatal("NewDir of a file succeeded")
	}
}

func TestDirPut(t *testing.T) {
	ctx := context.Background()
	c, leaves := signed(t, testKey, 42, 3)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	other, otherLeaves := signed(t, otherKey, 42, 3)
	fewer, fewerLeaves := signed(t, testKey, 42, 2)
	for _, tc := range []struct {
		name      string
		c         domain.Checkpoint
		leaves    []domain.ChainHead
		different bool
	}{
		{"the same again", c, leaves, false},
		{"signed by another key", other, otherLeaves, true},
		{"other leaves", fewer, fewerLeaves, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Put(ctx, c, leaves); err != nil {
				t.Fatalf("Put: %v", err)
			}
			path := filepath.Join(d.path, "checkpoint-00000000000000000042.json")
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o444 {
				t.Fatalf("file mode %v, %v; want 0444", fi.Mode(), err)
			}
			err = d.Put(ctx, tc.c, tc.leaves)
			if tc.different != errors.Is(err, ErrDifferent) || (!tc.different && err != nil) {
				t.Fatalf("second Put: %v; want ErrDifferent: %v", err, tc.different)
			}
			after, err := os.ReadFile(path)
			if err != nil || string(after) != string(before) {
				t.Fatalf("the file changed: %s (%v), was %s", after, err, before)
			}
			es, _ := os.ReadDir(d.path)
			if len(es) != 1 {
				t.Fatalf("the directory holds %d files, want 1 (no temporary file left)", len(es))
			}
			got, gotLeaves, err := Read(path)
			if err != nil || !equal(got, c) || !slices.Equal(gotLeaves, leaves) {
				t.Fatalf("Read: %+v %+v %v; want what was put first", got, gotLeaves, err)
			}
		})
	}
}

// TestDirPutConcurrent: Puts of one checkpoint racing each other all
// succeed and leave one file.
func TestDirPutConcurrent(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, leaves := signed(t, testKey, 9, 5)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = d.Put(context.Background(), c, leaves) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(d.path); len(es) != 1 {
		t.Fatalf("%d files, want 1", len(es))
	}
}

func TestDirLatest(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Latest(ctx); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Latest of an empty directory: %v, want ErrNotFound", err)
	}
	// Not checkpoints: Latest ignores them.
	for _, name := range []string{"checkpoint-99999999999999999999.json.bak", ".checkpoint-00000000000000009999.json.1234.tmp", "README", "checkpoint-9999.json"} {
		if err := os.WriteFile(filepath.Join(d.path, name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.Latest(ctx); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Latest with no checkpoint file: %v, want ErrNotFound", err)
	}
	for _, pos := range []int64{5, 1000, 99, 1001, 3} { // 1000 < 1001 but sorts after 99 as text
		c, leaves := signed(t, testKey, pos, int(pos%4))
		if err := d.Put(ctx, c, leaves); err != nil {
			t.Fatal(err)
		}
	}
	got, leaves, err := d.Latest(ctx)
	if err != nil || got.Position != 1001 || len(leaves) != got.Users {
		t.Fatalf("Latest: checkpoint %d with %d leaves, %v; want 1001", got.Position, len(leaves), err)
	}

	// A file under a position's name holding another position is refused.
	c, leaves := signed(t, testKey, 7, 1)
	b, _ := Encode(c, leaves)
	if err := os.WriteFile(filepath.Join(d.path, fileName(2000)), b, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Latest(ctx); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "holds checkpoint 7") {
		t.Fatalf("Latest of a misnamed file: %v, want ErrInvalid", err)
	}
}

func TestReadMissing(t *testing.T) {
	if _, _, err := Read(filepath.Join(t.TempDir(), "nope.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of no file: %v", err)
	}
}

func TestWriter(t *testing.T) {
	var buf strings.Builder
	w := NewWriter("test", &buf)
	if w.Name() != "test" || Stdout().Name() != "stdout" {
		t.Fatalf("names %q, %q", w.Name(), Stdout().Name())
	}
	var want []domain.Checkpoint
	var wg sync.WaitGroup
	for pos := int64(1); pos <= 20; pos++ {
		c, leaves := signed(t, testKey, pos, int(pos%5))
		want = append(want, c)
		wg.Go(func() {
			if err := w.Put(context.Background(), c, leaves); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	seen := map[int64]bool{}
	for _, l := range lines {
		c, _, err := Decode([]byte(l))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if !equal(c, want[c.Position-1]) {
			t.Fatalf("line for %d: %+v, want %+v", c.Position, c, want[c.Position-1])
		}
		seen[c.Position] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%d distinct checkpoints written, want %d", len(seen), len(want))
	}
}
