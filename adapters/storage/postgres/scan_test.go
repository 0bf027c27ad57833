package postgres

import (
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func TestParseUUID(t *testing.T) {
	for range 200 {
		id := domain.NewID(time.Now())
		got, ok := parseUUID([]byte(id.String()))
		if !ok || got != id {
			t.Fatalf("parseUUID(%s) = %s, %v", id, got, ok)
		}
	}
	if got, ok := parseUUID([]byte("0190A8F0-8A5B-7C3E-9F1A-2B3C4D5E6F70")); !ok || got.String() != "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70" {
		t.Errorf("upper case: %s, %v", got, ok)
	}
	for _, bad := range []string{"", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7", "0190a8f0x8a5b-7c3e-9f1a-2b3c4d5e6f70", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g", "0190a8f08a5b7c3e9f1a2b3c4d5e6f70abcd"} {
		if _, ok := parseUUID([]byte(bad)); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func TestInternedScanners(t *testing.T) {
	var a domain.Action
	for _, v := range []string{"login", "viewed", "custom.thing"} {
		if err := (actionScanner{&a}).Scan([]byte(v)); err != nil || string(a) != v {
			t.Errorf("action %q: %q, %v", v, a, err)
		}
	}
	var st domain.Status
	for _, v := range []string{"PENDING", "IN_PROGRESS", "DONE"} {
		if err := (statusScanner{&st}).Scan([]byte(v)); err != nil || string(st) != v {
			t.Errorf("status %q: %q, %v", v, st, err)
		}
	}
	// A shared string must not alias the driver's buffer.
	buf := []byte("custom.thing")
	_ = (actionScanner{&a}).Scan(buf)
	buf[0] = 'X'
	if a != "custom.thing" {
		t.Errorf("action aliases the driver's buffer: %q", a)
	}
}

// TestTimeText: every timestamptz PostgreSQL renders as text reads back as
// the instant the driver reads from the column itself, through the fast
// parser where it applies and the driver's parser where it does not.
func TestTimeText(t *testing.T) {
	s := newStore(t)
	rows, err := s.db.QueryContext(t.Context(), `
		SELECT x, x::text FROM (VALUES
		    ('2026-12-06 10:55:24.123456+00'::timestamptz), ('2026-12-06 10:55:24+00'), ('2026-12-06 10:55:24.5+00'),
		    ('2026-12-06 10:55:24.000001+00'), ('0001-01-01 00:00:00+00'), ('9999-12-31 23:59:59.999999+00'),
		    ('10000-01-01 00:00:00+00'), ('0044-03-15 12:00:00+00 BC'), ('2024-02-29 23:59:59.99+00'),
		    ('1969-12-31 23:59:59.999999+00'), ('2026-06-01 12:00:00+02')
		) AS v(x)
		UNION ALL
		SELECT y, y::text FROM (
		    SELECT now() - g * interval '1 second' - (random() * 1000000)::int * interval '1 microsecond' AS y
		    FROM generate_series(1, 500) g) r`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			want time.Time
			txt  string
			got  time.Time
		)
		if err := rows.Scan(&want, &txt); err != nil {
			t.Fatal(err)
		}
		if err := (timeScanner{&got}).Scan(txt); err != nil {
			t.Fatalf("%s: %v", txt, err)
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: read %v, want %v", txt, got, want.UTC())
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 511 {
		t.Fatalf("%d rows, %v", n, err)
	}
	for _, bad := range []string{"2026-13-01 00:00:00+00", "2026-12-06 10:55:24.+00", "2026-12-06T10:55:24+00", "2026-12-06 10:55:24.1234567+00"} {
		if _, ok := parsePGTime(bad); ok {
			t.Errorf("parsePGTime(%q) accepted", bad)
		}
	}
}
