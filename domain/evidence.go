package domain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Tamper evidence (issue 18): every change of a user is linked into that
// user's hash chain, in feed order; a checkpoint signs the Merkle root of
// every user's chain head at a position with an Ed25519 key kept outside
// the database. A link covers a digest of the metadata, never the metadata,
// so an erasure leaves the chain verifiable. The encodings below are the
// scheme: docs/evidence.md describes them for independent verifiers, and
// changing one is a new version of the scheme, not an edit.

// Hash is a SHA-256 digest.
type Hash [32]byte

// String is the digest in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as lower-case hex (JSON: a string).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash reads 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("not a SHA-256 digest in hex: %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// ChainEntry is what a link covers of one change.
type ChainEntry struct {
	Position   int64      `json:"position"`
	Kind       ChangeKind `json:"kind"`
	UserID     int64      `json:"user_id"`
	EventID    ID         `json:"event_id"` // zero for an erasure
	Action     Action     `json:"action"`   // "" for an erasure
	Status     Status     `json:"status"`   // the status the change left; "" for an erasure
	OccurredAt time.Time  `json:"occurred_at"`
	RecordedAt time.Time  `json:"recorded_at"`
	At         time.Time  `json:"at"` // the change's time
	// Digest is MetadataDigest of the metadata as recorded for
	// ChangeRecorded, ErasureDigest for ChangeErased, zero for
	// ChangeStatus.
	Digest Hash `json:"digest"`
}

const (
	entryTag = "activityd/entry/v1"
	linkTag  = "activityd/link/v1"
	leafTag  = "activityd/leaf/v1"
)

// MetadataDigest is the digest a link covers of canonical metadata md.
func MetadataDigest(md []byte) Hash {
	return sha256.Sum256(append([]byte("activityd/metadata/v1\x00"), md...))
}

// ErasureDigest is the digest a link covers of an erasure's record.
func ErasureDigest(e Erasure) Hash {
	b := []byte("activityd/erasure/v1\x00")
	b = binary.BigEndian.AppendUint64(b, uint64(e.UserID))
	b = appendMicros(b, e.From)
	b = appendMicros(b, e.To)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Count))
	b = appendField(b, e.By)
	return sha256.Sum256(b)
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendMicros encodes t as Unix microseconds; the zero time as 0.
func appendMicros(b []byte, t time.Time) []byte {
	var us int64
	if !t.IsZero() {
		us = Normalize(t).UnixMicro()
	}
	return binary.BigEndian.AppendUint64(b, uint64(us))
}

// Hash is the entry's own digest: SHA-256 of its fields in a fixed
// binary encoding (integers big-endian, strings length-prefixed, times as
// Unix microseconds).
func (e ChainEntry) Hash() Hash {
	b := make([]byte, 0, 160)
	b = append(b, entryTag...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Position))
	b = appendField(b, string(e.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(e.UserID))
	b = append(b, e.EventID[:]...)
	b = appendField(b, string(e.Action))
	b = appendField(b, string(e.Status))
	b = appendMicros(b, e.OccurredAt)
	b = appendMicros(b, e.RecordedAt)
	b = appendMicros(b, e.At)
	b = append(b, e.Digest[:]...)
	return sha256.Sum256(b)
}

// Link is the link after prev (the zero Hash before a user's first
// change) of an entry whose Hash is entry.
func Link(prev, entry Hash) Hash {
	b := make([]byte, 0, len(linkTag)+1+64)
	b = append(b, linkTag...)
	b = append(b, 0)
	b = append(b, prev[:]...)
	b = append(b, entry[:]...)
	return sha256.Sum256(b)
}

// ChainHead is a user's chain as a checkpoint covers it.
type ChainHead struct {
	UserID   int64 `json:"user_id"`
	Position int64 `json:"position"` // of the user's last change covered
	Count    int64 `json:"count"`    // changes in the user's chain up to it
	Link     Hash  `json:"link"`
}

// Leaf is the head's leaf in a checkpoint's Merkle tree.
func (h ChainHead) Leaf() Hash {
	b := make([]byte, 0, 1+len(leafTag)+1+24+32)
	b = append(b, 0x00) // RFC 6962: leaf
	b = append(b, leafTag...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(h.UserID))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Position))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Count))
	b = append(b, h.Link[:]...)
	return sha256.Sum256(b)
}

func node(l, r Hash) Hash {
	b := make([]byte, 0, 65)
	b = append(b, 0x01) // RFC 6962: interior node
	b = append(b, l[:]...)
	b = append(b, r[:]...)
	return sha256.Sum256(b)
}

// split is RFC 6962's k: the largest power of two below n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// MerkleRoot is the RFC 6962 Merkle tree hash of leaves (already leaf
// hashes); the zero Hash for none.
func MerkleRoot(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return Hash{}
	case 1:
		return leaves[0]
	}
	k := split(len(leaves))
	return node(MerkleRoot(leaves[:k]), MerkleRoot(leaves[k:]))
}

// MerklePath is the RFC 6962 audit path of leaf i.
func MerklePath(leaves []Hash, i int) []Hash {
	if len(leaves) <= 1 {
		return nil
	}
	k := split(len(leaves))
	if i < k {
		return append(MerklePath(leaves[:k], i), MerkleRoot(leaves[k:]))
	}
	return append(MerklePath(leaves[k:], i-k), MerkleRoot(leaves[:k]))
}

// RootFromPath recomputes the root of a tree of n leaves from leaf i and
// its audit path (RFC 9162, 2.1.3.2).
func RootFromPath(leaf Hash, i, n int, path []Hash) (Hash, error) {
	if i < 0 || i >= n {
		return Hash{}, errors.New("leaf index outside the tree")
	}
	fn, sn := uint64(i), uint64(n-1)
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return Hash{}, errors.New("audit path too long")
		}
		if fn&1 == 1 || fn == sn {
			r = node(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = node(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, errors.New("audit path too short")
	}
	return r, nil
}

// Checkpoint is a signed statement of every user's chain head up to a
// position: the Merkle root of their leaves, in user id order.
type Checkpoint struct {
	Position  int64     `json:"position"` // covers every change up to it
	At        time.Time `json:"at"`
	Users     int       `json:"users"` // leaves
	Root      Hash      `json:"root"`
	KeyID     string    `json:"key_id"`    // CheckpointKeyID of the signing key
	Signature []byte    `json:"signature"` // Ed25519 over SignedBytes; base64 in JSON
}

// SignedBytes is what the signature covers.
func (c Checkpoint) SignedBytes() []byte {
	return []byte("activityd-checkpoint-v1\n" + strconv.FormatInt(c.Position, 10) + "\n" +
		Normalize(c.At).UTC().Format(time.RFC3339Nano) + "\n" + strconv.Itoa(c.Users) + "\n" + c.Root.String() + "\n")
}

// CheckpointKeyID names a checkpoint key: the first 16 hex digits of its SHA-256.
func CheckpointKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns c signed with key.
func (c Checkpoint) Sign(key ed25519.PrivateKey) Checkpoint {
	c.At = Normalize(c.At)
	c.KeyID = CheckpointKeyID(key.Public().(ed25519.PublicKey))
	c.Signature = ed25519.Sign(key, c.SignedBytes())
	return c
}

// ErrBadSignature: a checkpoint not signed by the key given.
var ErrBadSignature = errors.New("checkpoint signature does not verify with this key")

// Verify checks c's signature with pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, c.SignedBytes(), c.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Proof shows that one change is in a user's chain and that the chain's
// head is in a signed checkpoint.
type Proof struct {
	Entry      ChainEntry `json:"entry"`
	Prev       Hash       `json:"prev"`      // the link before Entry in the user's chain
	Following  []Hash     `json:"following"` // the Hash of each later change of the user, up to the checkpoint
	Head       ChainHead  `json:"head"`
	Index      int        `json:"index"` // of Head's leaf
	Path       []Hash     `json:"path"`  // its audit path
	Checkpoint Checkpoint `json:"checkpoint"`
}

// Verify checks p with the checkpoint key pub: Entry's link, folded with
// the following entries, gives Head's link; Head's leaf and the path give
// the checkpoint's root; the checkpoint is signed by pub.
func (p Proof) Verify(pub ed25519.PublicKey) error {
	if p.Head.UserID != p.Entry.UserID {
		return errors.New("the head is another user's")
	}
	if p.Entry.Position > p.Head.Position || p.Head.Position > p.Checkpoint.Position {
		return errors.New("positions out of order: entry, head, checkpoint")
	}
	link := Link(p.Prev, p.Entry.Hash())
	for _, h := range p.Following {
		link = Link(link, h)
	}
	if link != p.Head.Link {
		return errors.New("the chain from the entry does not reach the head")
	}
	root, err := RootFromPath(p.Head.Leaf(), p.Index, p.Checkpoint.Users, p.Path)
	if err != nil {
		return err
	}
	if root != p.Checkpoint.Root {
		return errors.New("the head is not in the checkpoint's tree")
	}
	return p.Checkpoint.Verify(pub)
}
