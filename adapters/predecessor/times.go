package predecessor

import (
	"fmt"
	"strings"
	"time"
)

// timeLayouts are the shapes a predecessor's time takes once cast to text,
// after a 'T' separator has been turned into a space. Go accepts a
// fractional second after the seconds field of any of them.
var timeLayouts = []string{
	"2006-01-02 15:04:05",       // Django on SQLite (naive UTC), PostgreSQL timestamp
	"2006-01-02 15:04:05Z07:00", // Z or +05:30
	"2006-01-02 15:04:05Z07",    // PostgreSQL timestamptz: +00, -08
	"2006-01-02 15:04:05Z0700",  // +0530
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05Z07:00:00", // PostgreSQL: offsets with seconds (historic zones)
}

// parseTime reads a time as a predecessor stored it: "2025-10-10
// 18:30:00.123456" (naive: UTC), with a 'T' separator, a trailing Z or an
// offset (converted to UTC), with or without a fraction. It returns the
// time in UTC, truncated to the microsecond.
func parseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) > 10 && (v[10] == 'T' || v[10] == 't') {
		v = v[:10] + " " + v[11:]
	}
	if strings.HasSuffix(v, "z") {
		v = v[:len(v)-1] + "Z"
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Truncate(time.Microsecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q does not parse (want e.g. 2025-10-10 18:30:00.123456, optionally with T, Z or an offset)", s)
}
