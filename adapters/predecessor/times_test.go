package predecessor

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	at := func(h, mi, s, us int) time.Time { return time.Date(2025, 10, 10, h, mi, s, us*1000, time.UTC) }
	for _, tc := range []struct {
		in   string
		want time.Time // zero: an error
	}{
		{"2025-10-10 18:30:00.123456", at(18, 30, 0, 123456)}, // Django on SQLite
		{"2025-10-10 18:30:00", at(18, 30, 0, 0)},
		{"2025-10-10T18:30:00", at(18, 30, 0, 0)},
		{"2025-10-10T18:30:00Z", at(18, 30, 0, 0)},
		{"2025-10-10t18:30:00z", at(18, 30, 0, 0)},
		{"2025-10-10T18:30:00.5Z", at(18, 30, 0, 500000)},
		{"2025-10-10T18:30:00+05:30", at(13, 0, 0, 0)},
		{"2025-10-10 18:30:00.25-08:00", at(2, 30, 0, 250000).AddDate(0, 0, 1)},
		{"2025-10-10 18:30:00+00", at(18, 30, 0, 0)},        // PostgreSQL timestamptz
		{"2025-10-10 18:30:00.000001+00", at(18, 30, 0, 1)}, // microseconds
		{"2025-10-10 18:30:00-08", at(2, 30, 0, 0).AddDate(0, 0, 1)},
		{"2025-10-10 18:30:00+0530", at(13, 0, 0, 0)},
		{"2025-10-10 18:30:00+05:53:28", at(12, 36, 32, 0)},      // a historic offset with seconds
		{"2025-10-10 18:30:00.123456789", at(18, 30, 0, 123456)}, // truncated to the microsecond
		{" 2025-10-10 18:30:00 ", at(18, 30, 0, 0)},
		{"infinity", time.Time{}},
		{"-infinity", time.Time{}},
		{"2025-10-10 18:30:00 BC", time.Time{}},
		{"13/10/2025 14:00", time.Time{}},
		{"1728585000", time.Time{}},
		{"", time.Time{}},
		{"2025-10-10", time.Time{}},
		{"2025-13-10 18:30:00", time.Time{}},
	} {
		got, err := parseTime(tc.in)
		if tc.want.IsZero() {
			if err == nil {
				t.Errorf("parseTime(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseTime(%q) = %v (%v), %v; want %v in UTC", tc.in, got, got.Location(), err, tc.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		url, driver, dsn, err string
	}{
		{url: "sqlite:" + dir, err: "is a directory"},
		{url: "sqlite:" + dir + "/missing.db", err: "no such file"},
		{url: "sqlite:", err: "names no database file"},
		{url: "sqlite::memory:", err: "names no database file"},
		{url: "mysql://x", err: `scheme "mysql" not supported`},
		{url: "nothing", err: "has no scheme"},
		{url: "postgres://u:secret@h/db?sslmode=disable", driver: "postgres",
			dsn: "postgres://u:secret@h/db?default_transaction_read_only=on&sslmode=disable&timezone=UTC"},
		{url: "postgresql://h/db?default_transaction_read_only=off", driver: "postgres",
			dsn: "postgresql://h/db?default_transaction_read_only=on&timezone=UTC"},
	} {
		driver, dsn, _, err := parseURL(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseURL(%q) error = %v, want one saying %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || driver != tc.driver || dsn != tc.dsn {
			t.Errorf("parseURL(%q) = %q, %q, %v; want %q, %q", tc.url, driver, dsn, err, tc.driver, tc.dsn)
		}
	}
}
