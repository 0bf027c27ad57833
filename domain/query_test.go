package domain_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func TestCursorRoundTrip(t *testing.T) {
	id := domain.NewID(now)
	times := []time.Time{
		nowNorm,
		time.Unix(0, 0).UTC(),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC), // negative Unix time
		nowNorm.In(time.FixedZone("x", 7200)),
	}
	for _, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
		for _, o := range []domain.Order{domain.Desc, domain.Asc} {
			for _, at := range times {
				c := domain.Cursor{Time: at, ID: id, TimeField: tf, Order: o}
				s := c.Encode()
				if strings.ContainsAny(s, "+/=") {
					t.Errorf("Encode() = %q is not URL-safe", s)
				}
				got, err := domain.DecodeCursor(s)
				if err != nil {
					t.Fatalf("DecodeCursor(%q): %v", s, err)
				}
				if !got.Time.Equal(at) || got.Time.Location() != time.UTC || got.ID != id || got.TimeField != tf || got.Order != o {
					t.Errorf("round trip of %+v = %+v", c, got)
				}
			}
		}
	}
	// A cursor keeps microseconds, the stored precision.
	c := domain.Cursor{Time: now, TimeField: domain.ByRecordedAt, Order: domain.Desc}
	got, _ := domain.DecodeCursor(c.Encode())
	if !got.Time.Equal(nowNorm) {
		t.Errorf("cursor time = %v, want %v", got.Time, nowNorm)
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	valid := domain.Cursor{Time: nowNorm, ID: domain.NewID(now), TimeField: domain.ByOccurredAt, Order: domain.Asc}.Encode()
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	mutate := func(f func(b []byte) []byte) string {
		return base64.RawURLEncoding.EncodeToString(f(slices.Clone(raw)))
	}
	for name, s := range map[string]string{
		"empty":        "",
		"garbage":      "not a cursor!",
		"padded":       valid + "=",
		"std alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(mutate(func(b []byte) []byte { b[3], b[4], b[5] = 0xff, 0xff, 0xff; return b })),
		"truncated":    valid[:len(valid)-1],
		"short":        mutate(func(b []byte) []byte { return b[:26] }),
		"long":         mutate(func(b []byte) []byte { return append(b, 0) }),
		"version 0":    mutate(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":    mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"field flag 2": mutate(func(b []byte) []byte { b[1] = 2; return b }),
		"order flag 9": mutate(func(b []byte) []byte { b[2] = 9; return b }),
		"a UUID":       "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70",
	} {
		if c, err := domain.DecodeCursor(s); err == nil {
			t.Errorf("%s: DecodeCursor(%q) = %+v, want an error", name, s, c)
		}
	}
}

func TestFilterDefaults(t *testing.T) {
	f, err := domain.DefaultLimits().Filter(domain.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Limit != domain.DefaultLimit || f.Order != domain.Desc || f.TimeField != domain.ByRecordedAt ||
		f.UserID != 0 || f.Actions != nil || f.Status != "" || !f.From.IsZero() || !f.To.IsZero() || f.After != nil || f.Offset != 0 {
		t.Errorf("Filter(empty) = %+v", f)
	}
	if domain.DefaultLimit != 50 || domain.MaxLimit != 1000 {
		t.Errorf("limits %d/%d, want 50/1000", domain.DefaultLimit, domain.MaxLimit)
	}
}

func TestFilterParameters(t *testing.T) {
	l := domain.DefaultLimits()
	descCursor := domain.Cursor{Time: nowNorm, ID: domain.NewID(now), TimeField: domain.ByRecordedAt, Order: domain.Desc}
	ascCursor := descCursor
	ascCursor.Order = domain.Asc
	occCursor := descCursor
	occCursor.TimeField = domain.ByOccurredAt

	tests := []struct {
		name  string
		q     domain.Query
		check func(t *testing.T, f domain.Filter) // nil when invalid
		bad   []field
	}{
		{"user", domain.Query{UserID: "42"}, func(t *testing.T, f domain.Filter) {
			if f.UserID != 42 {
				t.Errorf("UserID = %d", f.UserID)
			}
		}, nil},
		{"negative user", domain.Query{UserID: "-1"}, nil, []field{{"user_id", "positive"}}},
		{"actions normalised, deduplicated, beyond vocabulary", domain.Query{Actions: []string{"LOGIN", "login", "retired_action", "Viewed"}}, func(t *testing.T, f domain.Filter) {
			if want := []domain.Action{"login", "retired_action", "viewed"}; !slices.Equal(f.Actions, want) {
				t.Errorf("Actions = %v, want %v", f.Actions, want)
			}
		}, nil},
		{"ill-formed actions", domain.Query{Actions: []string{"login", "bad action", ""}}, nil, []field{{"action", "must start"}, {"action", "is required"}}},
		{"status", domain.Query{Status: "IN_PROGRESS"}, func(t *testing.T, f domain.Filter) {
			if f.Status != domain.StatusInProgress {
				t.Errorf("Status = %q", f.Status)
			}
		}, nil},
		{"bad status", domain.Query{Status: "done"}, nil, []field{{"status", "PENDING"}}},
		{"range", domain.Query{From: "2025-01-01T00:00:00+01:00", To: "2025-01-02T00:00:00.5Z"}, func(t *testing.T, f domain.Filter) {
			if !f.From.Equal(time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC)) || !f.To.Equal(time.Date(2025, 1, 2, 0, 0, 0, 5e8, time.UTC)) {
				t.Errorf("From, To = %v, %v", f.From, f.To)
			}
			if f.From.Location() != time.UTC || f.To.Location() != time.UTC {
				t.Error("range not in UTC")
			}
		}, nil},
		{"empty range from == to", domain.Query{From: "2025-01-01T00:00:00Z", To: "2025-01-01T00:00:00Z"}, func(t *testing.T, f domain.Filter) {}, nil},
		{"only from", domain.Query{From: "2025-01-01T00:00:00Z"}, func(t *testing.T, f domain.Filter) {
			if f.From.IsZero() || !f.To.IsZero() {
				t.Errorf("From, To = %v, %v", f.From, f.To)
			}
		}, nil},
		{"from after to", domain.Query{From: "2025-01-02T00:00:00Z", To: "2025-01-01T00:00:00Z"}, nil, []field{{"from", "must not be after to"}}},
		{"from after to by a microsecond", domain.Query{From: "2025-01-01T00:00:00.000001Z", To: "2025-01-01T00:00:00Z"}, nil, []field{{"from", "after to"}}},
		{"bad from", domain.Query{From: "2025-01-01"}, nil, []field{{"from", "RFC 3339"}}},
		{"unencoded plus in to", domain.Query{To: "2025-01-01T00:00:00 01:00"}, nil, []field{{"to", "%2B"}}},
		{"time_field recorded_at", domain.Query{TimeField: "recorded_at"}, func(t *testing.T, f domain.Filter) {
			if f.TimeField != domain.ByRecordedAt {
				t.Errorf("TimeField = %q", f.TimeField)
			}
		}, nil},
		{"time_field occurred_at", domain.Query{TimeField: "occurred_at"}, func(t *testing.T, f domain.Filter) {
			if f.TimeField != domain.ByOccurredAt {
				t.Errorf("TimeField = %q", f.TimeField)
			}
		}, nil},
		{"bad time_field", domain.Query{TimeField: "updated_at"}, nil, []field{{"time_field", "recorded_at or occurred_at"}}},
		{"order asc", domain.Query{Order: "asc"}, func(t *testing.T, f domain.Filter) {
			if f.Order != domain.Asc {
				t.Errorf("Order = %q", f.Order)
			}
		}, nil},
		{"order desc", domain.Query{Order: "desc"}, func(t *testing.T, f domain.Filter) {
			if f.Order != domain.Desc {
				t.Errorf("Order = %q", f.Order)
			}
		}, nil},
		{"bad order", domain.Query{Order: "ASC"}, nil, []field{{"order", "desc or asc"}}},
		{"limit 1", domain.Query{Limit: "1"}, limitIs(1), nil},
		{"limit 1000", domain.Query{Limit: "1000"}, limitIs(1000), nil},
		{"limit +7", domain.Query{Limit: "+7"}, limitIs(7), nil},
		{"limit 0", domain.Query{Limit: "0"}, nil, []field{{"limit", "from 1 to 1000"}}},
		{"limit 1001", domain.Query{Limit: "1001"}, nil, []field{{"limit", "from 1 to 1000"}}},
		{"limit -1", domain.Query{Limit: "-1"}, nil, []field{{"limit", "from 1 to 1000"}}},
		{"limit abc", domain.Query{Limit: "abc"}, nil, []field{{"limit", "integer"}}},
		{"limit 1.5", domain.Query{Limit: "1.5"}, nil, []field{{"limit", "integer"}}},
		{"limit sign only", domain.Query{Limit: "-"}, nil, []field{{"limit", "integer"}}},
		{"limit huge", domain.Query{Limit: "99999999999999999999"}, nil, []field{{"limit", "integer"}}},
		{"cursor", domain.Query{Cursor: descCursor.Encode()}, func(t *testing.T, f domain.Filter) {
			if f.After == nil || f.After.ID != descCursor.ID || !f.After.Time.Equal(descCursor.Time) {
				t.Errorf("After = %+v, want %+v", f.After, descCursor)
			}
		}, nil},
		{"asc cursor", domain.Query{Order: "asc", Cursor: ascCursor.Encode()}, func(t *testing.T, f domain.Filter) {
			if f.After == nil || f.After.Order != domain.Asc {
				t.Errorf("After = %+v", f.After)
			}
		}, nil},
		{"garbage cursor", domain.Query{Cursor: "xyz"}, nil, []field{{"cursor", "not a cursor this service issued"}}},
		{"cursor for another order", domain.Query{Cursor: ascCursor.Encode()}, nil, []field{{"cursor", "another order"}}},
		{"desc cursor with asc", domain.Query{Order: "asc", Cursor: descCursor.Encode()}, nil, []field{{"cursor", "another order"}}},
		{"cursor for another time_field", domain.Query{Cursor: occCursor.Encode()}, nil, []field{{"cursor", "time_field"}}},
		{"every parameter bad at once", domain.Query{
			UserID: "-5", Actions: []string{"!"}, Status: "x", From: "a", To: "b",
			TimeField: "c", Order: "d", Limit: "e", Cursor: "f",
		}, nil, []field{
			{"user_id", ""}, {"action", ""}, {"status", ""}, {"from", ""}, {"to", ""},
			{"time_field", ""}, {"order", ""}, {"limit", ""}, {"cursor", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := l.Filter(tt.q)
			if tt.check == nil {
				assertFields(t, err, tt.bad...)
				return
			}
			if err != nil {
				t.Fatalf("Filter(%+v): %v", tt.q, err)
			}
			tt.check(t, f)
		})
	}
}

func limitIs(n int) func(*testing.T, domain.Filter) {
	return func(t *testing.T, f domain.Filter) {
		if f.Limit != n {
			t.Errorf("Limit = %d, want %d", f.Limit, n)
		}
	}
}

func TestFilterTimeOfAndCursorAfter(t *testing.T) {
	e := domain.Event{
		ID:         domain.NewID(now),
		OccurredAt: nowNorm.Add(-time.Hour),
		RecordedAt: nowNorm,
	}
	rec := domain.Filter{TimeField: domain.ByRecordedAt, Order: domain.Desc}
	occ := domain.Filter{TimeField: domain.ByOccurredAt, Order: domain.Asc}
	if !rec.TimeOf(e).Equal(e.RecordedAt) || !occ.TimeOf(e).Equal(e.OccurredAt) {
		t.Error("TimeOf picks the wrong time")
	}
	if !(domain.Filter{}).TimeOf(e).Equal(e.RecordedAt) {
		t.Error("the zero TimeField should mean recorded_at")
	}
	c := occ.CursorAfter(e)
	if c.ID != e.ID || !c.Time.Equal(e.OccurredAt) || c.TimeField != domain.ByOccurredAt || c.Order != domain.Asc {
		t.Errorf("CursorAfter = %+v", c)
	}
	// The cursor a filter hands out is accepted by the same filter.
	got, err := domain.DefaultLimits().Filter(domain.Query{TimeField: "occurred_at", Order: "asc", Cursor: c.Encode()})
	if err != nil || got.After == nil || got.After.ID != e.ID {
		t.Errorf("Filter with its own cursor = %+v, %v", got.After, err)
	}
}
