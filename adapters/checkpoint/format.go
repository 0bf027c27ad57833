// Package checkpoint keeps signed checkpoints (issue 18, docs/evidence.md)
// outside the database: in a directory of files, on standard output, or at
// a webhook receiver. Each is a ports.CheckpointSink; the directory is also
// a ports.CheckpointSource. A checkpoint travels with its leaves (every
// user's chain head), so that a copy is enough to check a database against,
// and is written as one JSON object:
//
//	{"checkpoint": {"position": …, "at": …, "users": …, "root": …, "key_id": …, "signature": …},
//	 "leaves": [{"user_id": …, "position": …, "count": …, "link": …}, …]}
//
// The package also reads and makes the Ed25519 key checkpoints are signed
// with.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/activityd/activityd/domain"
)

// ErrInvalid is wrapped by every error about a checkpoint that is not what
// it should be: malformed JSON, leaves that do not give the signed root,
// leaves out of order, a missing signature.
var ErrInvalid = errors.New("invalid checkpoint")

// file is the JSON form of a checkpoint with its leaves. Type is set only
// in webhook bodies; Decode ignores it, so a receiver can keep the body it
// was sent as a checkpoint file.
type file struct {
	Type       string              `json:"type,omitempty"`
	Checkpoint *domain.Checkpoint  `json:"checkpoint"`
	Leaves     *[]domain.ChainHead `json:"leaves"`
}

// Encode renders c with its leaves as a checkpoint file: one compact JSON
// object, without a trailing newline. It refuses what Decode would refuse,
// so a sink never writes a checkpoint that cannot be read back.
func Encode(c domain.Checkpoint, leaves []domain.ChainHead) ([]byte, error) {
	return encode("", c, leaves)
}

func encode(typ string, c domain.Checkpoint, leaves []domain.ChainHead) ([]byte, error) {
	if err := check(c, leaves); err != nil {
		return nil, err
	}
	if leaves == nil {
		leaves = []domain.ChainHead{} // "leaves":[] rather than null
	}
	b, err := json.Marshal(file{Type: typ, Checkpoint: &c, Leaves: &leaves})
	if err != nil {
		return nil, fmt.Errorf("encoding checkpoint %d: %w", c.Position, err)
	}
	return b, nil
}

// Decode reads a checkpoint file and checks that it is whole: the leaves,
// as many as the checkpoint's users and in increasing user id order, give
// its root, and it carries a signature. Whether the signature verifies
// needs the public key and is left to the caller (domain.Checkpoint.Verify).
// Fields Decode does not know are ignored.
func Decode(b []byte) (domain.Checkpoint, []domain.ChainHead, error) {
	var f file
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&f); err != nil {
		return domain.Checkpoint{}, nil, fmt.Errorf("%w: not a checkpoint JSON object: %w", ErrInvalid, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return domain.Checkpoint{}, nil, fmt.Errorf("%w: data after the JSON object (one checkpoint per file)", ErrInvalid)
	}
	if f.Checkpoint == nil {
		return domain.Checkpoint{}, nil, fmt.Errorf(`%w: no "checkpoint" object`, ErrInvalid)
	}
	if f.Leaves == nil {
		return domain.Checkpoint{}, nil, fmt.Errorf(`%w: checkpoint %d: no "leaves" array`, ErrInvalid, f.Checkpoint.Position)
	}
	c, leaves := *f.Checkpoint, *f.Leaves
	if err := check(c, leaves); err != nil {
		return domain.Checkpoint{}, nil, err
	}
	return c, leaves, nil
}

// check is what Encode and Decode require of a checkpoint and its leaves.
func check(c domain.Checkpoint, leaves []domain.ChainHead) error {
	if c.Position < 0 {
		return fmt.Errorf("%w: position %d is negative", ErrInvalid, c.Position)
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: checkpoint %d: signature is %d bytes, want %d (an Ed25519 signature)", ErrInvalid, c.Position, len(c.Signature), ed25519.SignatureSize)
	}
	if c.KeyID == "" {
		return fmt.Errorf("%w: checkpoint %d: no key_id", ErrInvalid, c.Position)
	}
	if len(leaves) != c.Users {
		return fmt.Errorf("%w: checkpoint %d: %d leaves, but it signs %d users", ErrInvalid, c.Position, len(leaves), c.Users)
	}
	hs := make([]domain.Hash, len(leaves))
	for i, l := range leaves {
		if i > 0 && l.UserID <= leaves[i-1].UserID {
			return fmt.Errorf("%w: checkpoint %d: leaf %d (user %d) does not follow user %d: leaves must be in increasing user id order", ErrInvalid, c.Position, i, l.UserID, leaves[i-1].UserID)
		}
		if l.Position > c.Position {
			return fmt.Errorf("%w: checkpoint %d: leaf %d (user %d) is at position %d, after the checkpoint", ErrInvalid, c.Position, i, l.UserID, l.Position)
		}
		hs[i] = l.Leaf()
	}
	if root := domain.MerkleRoot(hs); root != c.Root {
		return fmt.Errorf("%w: checkpoint %d: the leaves give root %s, the checkpoint signs %s", ErrInvalid, c.Position, root, c.Root)
	}
	return nil
}

// Read reads and decodes the checkpoint file at path (what Dir writes,
// or a line Writer wrote saved on its own), as `activityd verify
// --checkpoint FILE` does.
func Read(path string) (domain.Checkpoint, []domain.ChainHead, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return domain.Checkpoint{}, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	c, leaves, err := Decode(b)
	if err != nil {
		return domain.Checkpoint{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, leaves, nil
}
