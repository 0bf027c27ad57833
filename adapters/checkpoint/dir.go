package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// ErrDifferent: a sink already holds another checkpoint at the position
// being written. Two checkpoints signed at one position mean two signers
// disagree about the feed, which is worth an operator's look; the file
// there is left as it is.
var ErrDifferent = errors.New("a different checkpoint is already there at this position")

// Dir keeps checkpoints as files in a directory, one per position, named
// checkpoint-<position, 20 digits>.json so that they sort by position.
// Files are written once, read-only, and never replaced.
type Dir struct {
	path string
}

var (
	_ ports.CheckpointSink   = (*Dir)(nil)
	_ ports.CheckpointSource = (*Dir)(nil)
)

// NewDir returns a Dir writing to path, created (mode 0700) if missing.
func NewDir(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("checkpoint directory: no path given")
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("checkpoint directory %s: not a directory", path)
	}
	return &Dir{path: path}, nil
}

// Name is "dir:" and the directory's path.
func (d *Dir) Name() string { return "dir:" + d.path }

const (
	filePrefix = "checkpoint-"
	fileSuffix = ".json"
)

// fileName is the name of the file holding the checkpoint at position.
func fileName(position int64) string {
	return fmt.Sprintf(filePrefix+"%020d"+fileSuffix, position)
}

// positionOf is the position a checkpoint file's name stands for; ok is
// false for any other name.
func positionOf(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, fileSuffix); !ok || len(digits) != 20 {
		return 0, false
	}
	p, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || p < 0 {
		return 0, false
	}
	return p, true
}

// Put writes c with its leaves to the file for c's position, read-only
// (0444). The file appears whole or not at all, and is on disk when Put
// returns. A file already there is left alone: Put succeeds when it holds
// the same checkpoint and fails with ErrDifferent when it does not.
func (d *Dir) Put(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := Encode(c, leaves)
	if err != nil {
		return err
	}
	name := fileName(c.Position)
	if err := d.same(name, c, leaves); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err = writeNew(d.path, name, b, 0o444)
	if errors.Is(err, fs.ErrExist) { // written meanwhile, by another process or Put
		return d.same(name, c, leaves)
	}
	return err
}

// same compares the checkpoint file name with c and its leaves: nil when it
// holds them, ErrDifferent when it holds another, an error wrapping
// fs.ErrNotExist when there is no such file.
func (d *Dir) same(name string, c domain.Checkpoint, leaves []domain.ChainHead) error {
	path := filepath.Join(d.path, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", c.Position, err)
	}
	old, oldLeaves, err := Decode(b)
	if err != nil {
		return fmt.Errorf("checkpoint %d: the file already there, %s: %w", c.Position, path, err)
	}
	if !equal(old, c) || !slices.Equal(oldLeaves, leaves) {
		return fmt.Errorf("checkpoint %d: %s: %w (key %s there, %s here)", c.Position, path, ErrDifferent, old.KeyID, c.KeyID)
	}
	return nil
}

func equal(a, b domain.Checkpoint) bool {
	return a.Position == b.Position && a.At.Equal(b.At) && a.Users == b.Users && a.Root == b.Root &&
		a.KeyID == b.KeyID && string(a.Signature) == string(b.Signature)
}

// Latest returns the checkpoint with the highest position in the
// directory, with its leaves; domain.ErrNotFound when there is none.
func (d *Dir) Latest(ctx context.Context) (domain.Checkpoint, []domain.ChainHead, error) {
	if err := ctx.Err(); err != nil {
		return domain.Checkpoint{}, nil, err
	}
	es, err := os.ReadDir(d.path)
	if err != nil {
		return domain.Checkpoint{}, nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	best, name := int64(-1), ""
	for _, e := range es {
		if p, ok := positionOf(e.Name()); ok && e.Type().IsRegular() && p > best {
			best, name = p, e.Name()
		}
	}
	if name == "" {
		return domain.Checkpoint{}, nil, fmt.Errorf("%w: no checkpoint in %s", domain.ErrNotFound, d.path)
	}
	c, leaves, err := Read(filepath.Join(d.path, name))
	if err != nil {
		return domain.Checkpoint{}, nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	if c.Position != best {
		return domain.Checkpoint{}, nil, fmt.Errorf("latest checkpoint: %s holds checkpoint %d: %w", name, c.Position, ErrInvalid)
	}
	return c, leaves, nil
}

// writeNew creates dir/name holding data with mode perm, failing with an
// error wrapping fs.ErrExist if it is already there. The data goes to a
// temporary file first, synced, which is then hard-linked to name — a link,
// unlike a rename, does not replace a file already there — and the
// directory is synced: after a crash name is absent or whole, never half
// written. A temporary file a crash leaves behind starts with a dot.
func writeNew(dir, name string, data []byte, perm os.FileMode) error {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmp := filepath.Join(dir, "."+name+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(tmp) // after the link, the name stays
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	final := filepath.Join(dir, name)
	if err := os.Link(tmp, final); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("writing %s: removing the temporary file: %w", final, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: %w", final, err)
	}
	return nil
}

// syncDir makes the names created and removed in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
