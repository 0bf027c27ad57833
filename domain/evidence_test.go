package domain_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// The independent side of these tests implements the scheme from its
// description (docs/evidence.md), with crypto/sha256 only.

func indepField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func indepEntryHash(e domain.ChainEntry) [32]byte {
	b := []byte("activityd/entry/v1\x00")
	b = binary.BigEndian.AppendUint64(b, uint64(e.Position))
	b = indepField(b, string(e.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(e.UserID))
	b = append(b, e.EventID[:]...)
	b = indepField(b, string(e.Action))
	b = indepField(b, string(e.Status))
	for _, t := range []time.Time{e.OccurredAt, e.RecordedAt, e.At} {
		var us int64
		if !t.IsZero() {
			us = t.UnixMicro()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(us))
	}
	b = append(b, e.Digest[:]...)
	return sha256.Sum256(b)
}

func indepLink(prev, entry [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte("activityd/link/v1\x00"), prev[:]...), entry[:]...))
}

// indepRoot is RFC 6962's MTH over leaf hashes.
func indepRoot(leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := indepRoot(leaves[:k]), indepRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func entry(pos int64, user int64, action string, md string) domain.ChainEntry {
	t := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC).Add(time.Duration(pos) * time.Second)
	return domain.ChainEntry{Position: pos, Kind: domain.ChangeRecorded, UserID: user, EventID: domain.NewID(t),
		Action: domain.Action(action), Status: domain.StatusPending, OccurredAt: t.Add(-time.Minute), RecordedAt: t, At: t,
		Digest: domain.MetadataDigest([]byte(md))}
}

func TestChainEncoding(t *testing.T) {
	e := entry(7, 42, "login", `{"ip":"10.0.0.1"}`)
	if got, want := e.Hash(), indepEntryHash(e); got != domain.Hash(want) {
		t.Fatalf("entry hash %s, independent %x", got, want)
	}
	prev := domain.Hash(sha256.Sum256([]byte("prev")))
	if got, want := domain.Link(prev, e.Hash()), indepLink(prev, indepEntryHash(e)); got != domain.Hash(want) {
		t.Fatalf("link %s, independent %x", got, want)
	}
	// Every field counts.
	for name, change := range map[string]func(*domain.ChainEntry){
		"position": func(e *domain.ChainEntry) { e.Position++ },
		"user":     func(e *domain.ChainEntry) { e.UserID++ },
		"action":   func(e *domain.ChainEntry) { e.Action = "logout" },
		"status":   func(e *domain.ChainEntry) { e.Status = domain.StatusDone },
		"time":     func(e *domain.ChainEntry) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"digest":   func(e *domain.ChainEntry) { e.Digest = domain.MetadataDigest([]byte(`{}`)) },
		"kind":     func(e *domain.ChainEntry) { e.Kind = domain.ChangeStatus },
	} {
		c := e
		change(&c)
		if c.Hash() == e.Hash() {
			t.Errorf("changing the %s leaves the entry's hash", name)
		}
	}
}

func TestMerkle(t *testing.T) {
	for n := 1; n <= 17; n++ {
		leaves := make([]domain.Hash, n)
		raw := make([][32]byte, n)
		for i := range leaves {
			leaves[i] = domain.ChainHead{UserID: int64(i + 1), Position: int64(10 * i), Count: 1, Link: domain.Hash(sha256.Sum256([]byte{byte(i)}))}.Leaf()
			raw[i] = leaves[i]
		}
		root := domain.MerkleRoot(leaves)
		if want := indepRoot(raw); root != domain.Hash(want) {
			t.Fatalf("n=%d: root %s, independent %x", n, root, want)
		}
		for i := range n {
			path := domain.MerklePath(leaves, i)
			got, err := domain.RootFromPath(leaves[i], i, n, path)
			if err != nil || got != root {
				t.Fatalf("n=%d i=%d: root from path %s, %v; want %s", n, i, got, err, root)
			}
			if n > 1 {
				if got, _ := domain.RootFromPath(leaves[(i+1)%n], i, n, path); got == root {
					t.Errorf("n=%d i=%d: another leaf verifies", n, i)
				}
			}
		}
	}
}

func TestCheckpointAndProof(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	// User 42's chain of five changes among others'.
	var (
		links []domain.Hash
		es    []domain.ChainEntry
		prev  domain.Hash
	)
	for i := range 5 {
		e := entry(int64(3*i+1), 42, "login", fmt.Sprintf(`{"n":%d}`, i))
		es = append(es, e)
		prev = domain.Link(prev, e.Hash())
		links = append(links, prev)
	}
	heads := []domain.ChainHead{
		{UserID: 7, Position: 2, Count: 1, Link: domain.Hash(sha256.Sum256([]byte("u7")))},
		{UserID: 42, Position: es[4].Position, Count: 5, Link: links[4]},
		{UserID: 99, Position: 20, Count: 3, Link: domain.Hash(sha256.Sum256([]byte("u99")))},
	}
	leaves := make([]domain.Hash, len(heads))
	for i, h := range heads {
		leaves[i] = h.Leaf()
	}
	cp := domain.Checkpoint{Position: 20, At: time.Now(), Users: len(heads), Root: domain.MerkleRoot(leaves)}.Sign(key)
	if err := cp.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if cp.KeyID != domain.CheckpointKeyID(pub) || len(cp.KeyID) != 16 {
		t.Errorf("KeyID = %q", cp.KeyID)
	}
	if err := cp.Verify(otherPub); err == nil {
		t.Error("a checkpoint verifies with another key")
	}
	forged := cp
	forged.Root[0] ^= 1
	if err := forged.Verify(pub); err == nil {
		t.Error("a checkpoint with another root verifies")
	}

	proof := domain.Proof{Entry: es[1], Prev: links[0], Following: []domain.Hash{es[2].Hash(), es[3].Hash(), es[4].Hash()},
		Head: heads[1], Index: 1, Path: domain.MerklePath(leaves, 1), Checkpoint: cp}
	if err := proof.Verify(pub); err != nil {
		t.Fatalf("a true proof: %v", err)
	}
	for name, spoil := range map[string]func(p *domain.Proof){
		"another action":    func(p *domain.Proof) { p.Entry.Action = "logout" },
		"other metadata":    func(p *domain.Proof) { p.Entry.Digest = domain.MetadataDigest([]byte(`{"n":9}`)) },
		"a change left out": func(p *domain.Proof) { p.Following = p.Following[1:] },
		"another head":      func(p *domain.Proof) { p.Head.Count++ },
		"another index":     func(p *domain.Proof) { p.Index = 0 },
		"another key": func(p *domain.Proof) {
			p.Checkpoint.Signature = ed25519.Sign(ed25519.NewKeyFromSeed(make([]byte, 32)), p.Checkpoint.SignedBytes())
		},
		"another user's head": func(p *domain.Proof) { p.Head = heads[0]; p.Index = 0; p.Path = domain.MerklePath(leaves, 0) },
	} {
		p := proof
		p.Following = append([]domain.Hash(nil), proof.Following...)
		spoil(&p)
		if err := p.Verify(pub); err == nil {
			t.Errorf("a proof with %s verifies", name)
		}
	}
}
