package domain

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// ID identifies an event: a UUID, made by the server as version 7 (time
// ordered) unless the client supplies its own.
type ID [16]byte

// NewID returns a UUIDv7 for the instant t: 48 bits of Unix milliseconds,
// then random bits, so ids sort roughly by creation time.
func NewID(t time.Time) ID {
	var id ID
	_, _ = rand.Read(id[6:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	ms := uint64(t.UnixMilli())
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ms<<16)
	copy(id[:6], b[:6])
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

var errBadID = errors.New("not a UUID")

// ParseID parses the canonical 36-character textual form of a UUID
// (hex digits in either case).
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, errBadID
	}
	src := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		src = append(src, s[i])
	}
	if _, err := hex.Decode(id[:], src); err != nil {
		return id, errBadID
	}
	return id, nil
}

// IsZero reports whether id is the nil UUID.
func (id ID) IsZero() bool { return id == ID{} }

// String returns the canonical lower-case form.
func (id ID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// KeyID derives a stable event id from an idempotency key, scoped to the
// user it is recorded for, so a retry with the same key finds the same event
// and two users' keys never collide. It is a name-based UUID (version 8,
// SHA-256 of the scope and key).
func KeyID(userID int64, key string) ID {
	sum := sha256Sum(idempotencyNamespace, userID, key)
	var id ID
	copy(id[:], sum[:16])
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80
	return id
}
