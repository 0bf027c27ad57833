package checkpoint

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// testKey is a fixed signing key, so that failures reproduce.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// signed is a checkpoint at position over users leaves, signed with key.
func signed(t *testing.T, key ed25519.PrivateKey, position int64, users int) (domain.Checkpoint, []domain.ChainHead) {
	t.Helper()
	leaves := make([]domain.ChainHead, users)
	hs := make([]domain.Hash, users)
	for i := range leaves {
		leaves[i] = domain.ChainHead{UserID: int64(10 + 3*i), Position: position - int64(i), Count: int64(i + 1), Link: domain.Hash{byte(i), byte(position)}}
		hs[i] = leaves[i].Leaf()
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC).Add(time.Duration(position) * time.Second)
	return domain.Checkpoint{Position: position, At: at, Users: users, Root: domain.MerkleRoot(hs)}.Sign(key), leaves
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, users := range []int{0, 1, 2, 3, 7} {
		c, leaves := signed(t, testKey, 100, users)
		b, err := Encode(c, leaves)
		if err != nil {
			t.Fatalf("%d users: Encode: %v", users, err)
		}
		got, gotLeaves, err := Decode(b)
		if err != nil {
			t.Fatalf("%d users: Decode: %v\n%s", users, err, b)
		}
		if !equal(got, c) || !slices.Equal(gotLeaves, leaves) {
			t.Fatalf("%d users: round trip gave %+v %+v, want %+v %+v", users, got, gotLeaves, c, leaves)
		}
		if err := got.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("%d users: the decoded checkpoint does not verify: %v", users, err)
		}
		if users == 0 && !strings.Contains(string(b), `"leaves":[]`) {
			t.Fatalf("no leaves encoded as %s, want \"leaves\":[]", b)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	c, leaves := signed(t, testKey, 100, 4)
	enc := func(c domain.Checkpoint, leaves []domain.ChainHead) string {
		// Encode refuses these too: what a tamperer would write.
		b, err := json.Marshal(file{Checkpoint: &c, Leaves: &leaves})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tampered := slices.Clone(leaves)
	tampered[2].Count++
	swapped := slices.Clone(leaves)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	dup := slices.Clone(leaves)
	dup[2].UserID = dup[1].UserID
	late := slices.Clone(leaves)
	late[0].Position = c.Position + 1
	moreUsers := c
	moreUsers.Users++
	unsigned := c
	unsigned.Signature = nil
	good := enc(c, leaves)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a leaf tampered with", enc(c, tampered), "the leaves give root"},
		{"leaves out of order", enc(c, swapped), "increasing user id order"},
		{"a user twice", enc(c, dup), "increasing user id order"},
		{"a leaf after the checkpoint", enc(c, late), "after the checkpoint"},
		{"fewer leaves than users", enc(moreUsers, leaves), "4 leaves, but it signs 5 users"},
		{"unsigned", enc(unsigned, leaves), "signature is 0 bytes"},
		{"not JSON", `{"checkpoint": `, "not a checkpoint JSON object"},
		{"a bad root", strings.Replace(good, c.Root.String(), "xyz", 1), "not a checkpoint JSON object"},
		{"an array", `[]`, "not a checkpoint JSON object"},
		{"empty", ``, "not a checkpoint JSON object"},
		{"no checkpoint", `{"leaves":[]}`, `no "checkpoint" object`},
		{"no leaves", strings.Replace(good, `"leaves":`, `"nope":`, 1), `no "leaves" array`},
		{"two objects", good + "\n" + good, "data after the JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode accepted %s", tc.in)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode: %v; want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	if _, err := Encode(c, tampered); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode of tampered leaves: %v, want ErrInvalid", err)
	}
}

func TestDecodeIgnoresType(t *testing.T) {
	c, leaves := signed(t, testKey, 7, 2)
	b, err := encode(MessageType, c, leaves)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := Decode(b); err != nil || !equal(got, c) {
		t.Fatalf("Decode of a webhook body: %+v, %v", got, err)
	}
}
