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
// then the microseconds within that millisecond in the 12-bit rand_a field
// (RFC 9562 §6.2, method 3: extra clock precision), then random bits. Ids
// sort by creation time, and an id made for a recorded time tells that time
// back to the microsecond (Time), so a store can find an event by id without
// a lookup table.
func NewID(t time.Time) ID {
	var id ID
	_, _ = rand.Read(id[8:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	t = t.UTC().Truncate(time.Microsecond)
	ms := uint64(t.UnixMilli())
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ms<<16)
	copy(id[:6], b[:6])
	us := uint16(t.Nanosecond() / 1000 % 1000) // < 1000: fits rand_a's 12 bits
	id[6] = 0x70 | byte(us>>8)                 // version 7
	id[7] = byte(us)
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// Time returns the instant NewID made id for, to the microsecond: ok is
// false unless id is a version-7 UUID whose rand_a field holds a
// microsecond count (< 1000). Another generator's UUIDv7 may also pass; a
// store uses the answer only as where to look, never as proof of origin.
func (id ID) Time() (t time.Time, ok bool) {
	if id[6]>>4 != 7 || id[8]>>6 != 2 {
		return time.Time{}, false
	}
	us := int64(id[6]&0x0f)<<8 | int64(id[7])
	if us >= 1000 {
		return time.Time{}, false
	}
	var b [8]byte
	copy(b[2:], id[:6])
	ms := int64(binary.BigEndian.Uint64(b[:]))
	return time.UnixMicro(ms*1000 + us).UTC(), true
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
func (id ID) String() string { return string(id.AppendText(make([]byte, 0, 36))) }

// AppendText appends the canonical lower-case form to b,
// for encoders that build a response in one buffer.
func (id ID) AppendText(b []byte) []byte {
	var s [36]byte
	hex.Encode(s[0:8], id[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], id[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], id[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], id[8:10])
	s[23] = '-'
	hex.Encode(s[24:], id[10:])
	return append(b, s[:]...)
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

// MarshalText is the canonical text form (JSON: a string).
func (id ID) MarshalText() ([]byte, error) { return id.AppendText(make([]byte, 0, 36)), nil }

// UnmarshalText reads ParseID's forms.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
