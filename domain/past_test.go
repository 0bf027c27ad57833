package domain

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestImported(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := time.Date(2019, 3, 4, 5, 6, 7, 891011000, time.FixedZone("IST", 5*3600+1800))
	id := LegacyID{ActivityLogger, 9}.ID()
	l := DefaultLimits()

	e, err := l.Imported(Past{ID: id, UserID: "4294967301", Action: "UPLOAD_FILE", Status: "done",
		OccurredAt: old.Add(-time.Hour), RecordedAt: old, Metadata: []byte(`{"b":1, "a":{"z":null}}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{ID: id, UserID: 1<<32 + 5, Action: "upload_file", Status: StatusDone,
		OccurredAt: Normalize(old.Add(-time.Hour)), RecordedAt: Normalize(old), UpdatedAt: Normalize(old)}
	if e.ID != want.ID || e.UserID != want.UserID || e.Action != want.Action || e.Status != want.Status ||
		!e.OccurredAt.Equal(want.OccurredAt) || !e.RecordedAt.Equal(want.RecordedAt) || !e.UpdatedAt.Equal(want.UpdatedAt) ||
		e.RecordedAt.Location() != time.UTC || string(e.Metadata) != `{"a":{"z":null},"b":1}` {
		t.Fatalf("got %+v (metadata %s), want %+v", e, e.Metadata, want)
	}

	for _, md := range []string{"", "null", " null "} {
		e, err := l.Imported(Past{ID: id, UserID: "6", Action: "login", RecordedAt: old, Metadata: []byte(md)}, now)
		if err != nil || string(e.Metadata) != "{}" || e.Status != StatusPending || !e.OccurredAt.Equal(e.RecordedAt) {
			t.Errorf("metadata %q: %+v %v", md, e, err)
		}
	}

	for _, c := range []struct {
		name   string
		p      Past
		fields []string
	}{
		{"nothing", Past{}, []string{"id", "user_id", "action", "recorded_at"}},
		{"zero user", Past{ID: id, UserID: "0", Action: "login", RecordedAt: old}, []string{"user_id"}},
		{"negative user", Past{ID: id, UserID: "-1", Action: "login", RecordedAt: old}, []string{"user_id"}},
		{"user not a number", Past{ID: id, UserID: "six", Action: "login", RecordedAt: old}, []string{"user_id"}},
		{"user over int64", Past{ID: id, UserID: "9223372036854775808", Action: "login", RecordedAt: old}, []string{"user_id"}},
		{"unknown action", Past{ID: id, UserID: "1", Action: "dance", RecordedAt: old}, []string{"action"}},
		{"bad status", Past{ID: id, UserID: "1", Action: "login", Status: "CANCELLED", RecordedAt: old}, []string{"status"}},
		{"string metadata", Past{ID: id, UserID: "1", Action: "login", RecordedAt: old, Metadata: []byte(`"x"`)}, []string{"metadata"}},
		{"array metadata", Past{ID: id, UserID: "1", Action: "login", RecordedAt: old, Metadata: []byte(`[1]`)}, []string{"metadata"}},
		{"not JSON", Past{ID: id, UserID: "1", Action: "login", RecordedAt: old, Metadata: []byte(`{oops`)}, []string{"metadata"}},
		{"future", Past{ID: id, UserID: "1", Action: "login", RecordedAt: now.Add(time.Hour)}, []string{"recorded_at"}},
	} {
		_, err := l.Imported(c.p, now)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a ValidationError", c.name, err)
			continue
		}
		var got []string
		for _, f := range ve.Fields {
			got = append(got, f.Field)
		}
		if strings.Join(got, ",") != strings.Join(c.fields, ",") {
			t.Errorf("%s: fields %v, want %v (%v)", c.name, got, c.fields, err)
		}
	}
}

func TestStepsTo(t *testing.T) {
	at := time.Unix(100, 0)
	for s, want := range map[Status]string{
		StatusPending:    "",
		StatusInProgress: "PENDING>IN_PROGRESS",
		StatusDone:       "PENDING>IN_PROGRESS,IN_PROGRESS>DONE",
	} {
		var got []string
		for _, tr := range StepsTo(s, at, "import:x") {
			if !tr.At.Equal(at) || tr.By != "import:x" {
				t.Errorf("%s: %+v", s, tr)
			}
			got = append(got, string(tr.From)+">"+string(tr.To))
		}
		if strings.Join(got, ",") != want {
			t.Errorf("StepsTo(%s) = %v, want %s", s, got, want)
		}
	}
}

func TestWindowAt(t *testing.T) {
	four := every(4 * time.Hour)
	for _, c := range []struct{ at, start, end string }{
		{"2025-10-10 18:30", "2025-10-10 16:00", "2025-10-10 20:00"},
		{"2025-10-10 16:00", "2025-10-10 16:00", "2025-10-10 20:00"}, // a tick opens its window
		{"2019-01-01 03:59:59.999999", "2019-01-01 00:00", "2019-01-01 04:00"},
	} {
		w, ok := WindowAt(four, ts(c.at))
		if !ok || !w.Start.Equal(ts(c.start)) || !w.End.Equal(ts(c.end)) || !w.Contains(ts(c.at)) {
			t.Errorf("WindowAt(%s) = %s, %v; want [%s, %s)", c.at, w, ok, c.start, c.end)
		}
	}
	if w, ok := WindowAt(weekdays{}, ts("2025-10-11 12:00")); !ok || !w.Start.Equal(ts("2025-10-10 00:00")) || !w.End.Equal(ts("2025-10-13 00:00")) {
		t.Errorf("weekend: %s %v", w, ok)
	}
	if _, ok := WindowAt(nil, ts("2025-10-11 12:00")); ok {
		t.Error("nil schedule has a window")
	}
}
