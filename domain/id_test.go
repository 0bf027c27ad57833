package domain_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// idMillis returns the 48-bit Unix-millisecond timestamp of a UUIDv7.
func idMillis(id domain.ID) int64 {
	var b [8]byte
	copy(b[2:], id[:6])
	return int64(binary.BigEndian.Uint64(b[:]))
}

func TestNewIDIsVersion7(t *testing.T) {
	at := time.Date(2025, 10, 10, 18, 30, 0, 987654321, time.UTC)
	seen := map[domain.ID]bool{}
	for range 1000 {
		id := domain.NewID(at)
		if v := id[6] >> 4; v != 7 {
			t.Fatalf("%s: version %d, want 7", id, v)
		}
		if id[8]&0xc0 != 0x80 {
			t.Fatalf("%s: variant bits %02b, want 10 (RFC 9562)", id, id[8]>>6)
		}
		if got := idMillis(id); got != at.UnixMilli() {
			t.Fatalf("%s: timestamp %d ms, want %d", id, got, at.UnixMilli())
		}
		if s := id.String(); s[14] != '7' || !strings.ContainsRune("89ab", rune(s[19])) {
			t.Fatalf("%s: textual version/variant wrong", s)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %s at one instant", id)
		}
		seen[id] = true
	}
}

func TestNewIDTimeOrdered(t *testing.T) {
	t0 := time.Date(2025, 10, 10, 18, 30, 0, 0, time.UTC)
	prev := domain.NewID(t0)
	for i := 1; i <= 2000; i++ {
		id := domain.NewID(t0.Add(time.Duration(i) * time.Millisecond))
		if bytes.Compare(prev[:], id[:]) >= 0 {
			t.Fatalf("NewID at +%dms = %s does not sort after %s", i, id, prev)
		}
		if prev.String() >= id.String() {
			t.Fatalf("textual form of %s does not sort after %s", id, prev)
		}
		prev = id
	}
}

func TestIDStringParseRoundTrip(t *testing.T) {
	for range 100 {
		id := domain.NewID(time.Now())
		s := id.String()
		if len(s) != 36 || s != strings.ToLower(s) {
			t.Fatalf("String() = %q, want 36 lower-case characters", s)
		}
		got, err := domain.ParseID(s)
		if err != nil || got != id {
			t.Fatalf("ParseID(%q) = %s, %v; want %s", s, got, err, id)
		}
		got, err = domain.ParseID(strings.ToUpper(s))
		if err != nil || got != id {
			t.Fatalf("ParseID(upper %q) = %s, %v", s, got, err)
		}
	}
	want := domain.ID{0x01, 0x90, 0xa8, 0xf0, 0x8a, 0x5b, 0x7c, 0x3e, 0x9f, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70}
	got, err := domain.ParseID("0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70")
	if err != nil || got != want {
		t.Errorf("ParseID = %v, %v; want %v", got, err, want)
	}
	if (domain.ID{}).String() != "00000000-0000-0000-0000-000000000000" || !(domain.ID{}).IsZero() || want.IsZero() {
		t.Error("nil UUID String/IsZero wrong")
	}
}

func TestParseIDRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7",           // 35
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f700",         // 37
		"0190a8f08a5b7c3e9f1a2b3c4d5e6f70",              // no dashes
		"{0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70}",        // braces
		"urn:uuid:0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", // URN
		"0190a8f0a8a5b-7c3e-9f1a-2b3c4d5e6f70",          // dash moved
		"0190a8f0-8a5b-7c3e-9f1a_2b3c4d5e6f70",          // underscore
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g",          // not hex
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7 ",          // space
		" 0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7",          // leading space
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f\u00e9",      // non-ASCII, 36 bytes
		"0190a8f0-+a5b-7c3e-9f1a-2b3c4d5e6f70",          // sign
		"------------------------------------",          // all dashes
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7\x00",       // NUL
	} {
		if id, err := domain.ParseID(s); err == nil {
			t.Errorf("ParseID(%q) = %s, want an error", s, id)
		}
	}
}

func TestKeyID(t *testing.T) {
	a := domain.KeyID(1, "order-17")
	if a != domain.KeyID(1, "order-17") {
		t.Fatal("KeyID is not stable")
	}
	// A fixed value (SHA-256 of "activityd/idempotency-key/v1\x001\x00order-17",
	// version and variant set): the derivation must not change between
	// releases, or a retry across an upgrade would record twice.
	if got, want := a.String(), "95210fb1-a6f5-8ac5-a716-1f3316ad59f8"; got != want {
		t.Fatalf("KeyID(1, order-17) = %s, want %s", got, want)
	}
	if a[6]>>4 != 8 || a[8]&0xc0 != 0x80 {
		t.Errorf("KeyID %s: want version 8, RFC variant", a)
	}
	distinct := map[domain.ID]string{}
	for _, c := range []struct {
		user int64
		key  string
	}{
		{1, "order-17"}, {2, "order-17"}, {1, "order-18"}, {1, ""}, {2, ""},
		{12, "3"}, {1, "23"}, // the user/key boundary is unambiguous
		{1, "\x002"}, {-1, "order-17"},
	} {
		id := domain.KeyID(c.user, c.key)
		if prev, dup := distinct[id]; dup {
			t.Errorf("KeyID(%d, %q) = KeyID(%s)", c.user, c.key, prev)
		}
		distinct[id] = c.key
		if id.IsZero() {
			t.Errorf("KeyID(%d, %q) is the nil UUID", c.user, c.key)
		}
	}
}

func TestIDTimeRoundTrip(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2025, 10, 10, 18, 30, 0, 987654321, time.UTC),
		time.Date(2025, 10, 10, 18, 30, 0, 999999000, time.UTC),
		time.Date(2025, 10, 10, 18, 30, 0, 1000, time.UTC),
		time.Date(2099, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
		time.Unix(0, 0),
	} {
		id := domain.NewID(at)
		got, ok := id.Time()
		if want := domain.Normalize(at); !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("NewID(%v).Time() = %v, %v; want %v, true", at, got, ok, want)
		}
	}
	// Sub-millisecond order holds too.
	a, b := domain.NewID(time.UnixMicro(1_000_001)), domain.NewID(time.UnixMicro(1_000_002))
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Errorf("%s does not sort before %s", a, b)
	}
}

func TestIDTimeRefuses(t *testing.T) {
	v7 := domain.NewID(time.Now())
	notMicros := v7
	notMicros[6], notMicros[7] = 0x7f, 0xff // rand_a 4095: not a microsecond count
	v4 := v7
	v4[6] = 0x40 | v4[6]&0x0f
	badVariant := v7
	badVariant[8] &= 0x3f
	for name, id := range map[string]domain.ID{
		"rand_a beyond 999": notMicros, "version 4": v4, "variant": badVariant,
		"key id": domain.KeyID(1, "k"), "nil": {},
	} {
		if got, ok := id.Time(); ok {
			t.Errorf("%s: %s.Time() = %v, true; want false", name, id, got)
		}
	}
}
