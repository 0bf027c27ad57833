package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// now is the server clock in these tests; it carries nanoseconds so the
// tests see them dropped.
var now = time.Date(2025, 10, 10, 18, 30, 0, 123456789, time.UTC)

var nowNorm = time.Date(2025, 10, 10, 18, 30, 0, 123456000, time.UTC)

func TestDefaultLimits(t *testing.T) {
	l := domain.DefaultLimits()
	if l.MaxClockSkew != 5*time.Minute || l.MaxMetadataBytes != 16<<10 {
		t.Errorf("DefaultLimits = %+v, want 5m skew and 16 KiB metadata", l)
	}
	if l.Actions.Any() {
		t.Error("default vocabulary accepts any action")
	}
}

func TestValidateValidEvent(t *testing.T) {
	e, err := domain.DefaultLimits().Validate(domain.NewEvent{UserID: 42, Action: "login"}, now)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if e.UserID != 42 || e.Action != "login" || e.Status != domain.StatusPending {
		t.Errorf("event = %+v", e)
	}
	if !e.RecordedAt.Equal(nowNorm) || e.RecordedAt.Location() != time.UTC {
		t.Errorf("RecordedAt = %v, want %v in UTC", e.RecordedAt, nowNorm)
	}
	if !e.OccurredAt.Equal(e.RecordedAt) || !e.UpdatedAt.Equal(e.RecordedAt) {
		t.Errorf("OccurredAt %v, UpdatedAt %v; want both = RecordedAt %v", e.OccurredAt, e.UpdatedAt, e.RecordedAt)
	}
	if string(e.Metadata) != "{}" {
		t.Errorf("Metadata = %s, want {}", e.Metadata)
	}
	if e.ID.IsZero() || e.ID[6]>>4 != 7 {
		t.Errorf("ID %s is not a server-made UUIDv7", e.ID)
	}
	if ms := idMillis(e.ID); ms != nowNorm.UnixMilli() {
		t.Errorf("ID time = %d ms, want %d", ms, nowNorm.UnixMilli())
	}
}

func TestValidateID(t *testing.T) {
	l := domain.DefaultLimits()
	tests := []struct {
		name, id string
		want     string // the id of the event; "" when invalid
		msg      string
	}{
		{"valid", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", ""},
		{"upper case", "0190A8F0-8A5B-7C3E-9F1A-2B3C4D5E6F70", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", ""},
		{"any version", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", ""},
		{"nil UUID", "00000000-0000-0000-0000-000000000000", "", "nil UUID"},
		{"not hex", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g", "", "must be a UUID"},
		{"no dashes", "0190a8f08a5b7c3e9f1a2b3c4d5e6f70", "", "must be a UUID"},
		{"braces", "{0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70}", "", "must be a UUID"},
		{"word", "my-event", "", "must be a UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := l.Validate(domain.NewEvent{ID: tt.id, UserID: 1, Action: "login"}, now)
			if tt.want == "" {
				assertFields(t, err, field{"id", tt.msg})
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if e.ID.String() != tt.want {
				t.Errorf("ID = %s, want the client's %s", e.ID, tt.want)
			}
		})
	}
}

func TestValidateUserID(t *testing.T) {
	l := domain.DefaultLimits()
	for _, u := range []int64{0, -1, -1 << 63} {
		_, err := l.Validate(domain.NewEvent{UserID: u, Action: "login"}, now)
		assertFields(t, err, field{"user_id", "positive integer"})
	}
	for _, u := range []int64{1, 1<<63 - 1} {
		if e, err := l.Validate(domain.NewEvent{UserID: u, Action: "login"}, now); err != nil || e.UserID != u {
			t.Errorf("user %d: %+v, %v", u, e, err)
		}
	}
}

func TestValidateAction(t *testing.T) {
	longest := "a" + strings.Repeat("b", 63) // 64 characters: the longest allowed
	anyL := domain.Limits{Actions: domain.AnyAction(), MaxClockSkew: time.Minute}
	def := domain.DefaultLimits()
	tests := []struct {
		name   string
		limits domain.Limits
		in     string
		want   domain.Action // "" when invalid
		msg    string
	}{
		{"in vocabulary", def, "login", "login", ""},
		{"upper case normalised", def, "LOGIN", "login", ""},
		{"mixed case normalised", def, "Upload_File", "upload_file", ""},
		{"empty", def, "", "", "is required"},
		{"not in vocabulary", def, "jump", "", `unknown action "jump"; accepted: created, deleted, login, logout, updated, upload_file, viewed`},
		{"upper case not in vocabulary", def, "JUMP", "", `unknown action "jump"`},
		{"leading digit", def, "1login", "", "must start with a letter"},
		{"leading underscore", anyL, "_login", "", "must start with a letter"},
		{"space", anyL, "log in", "", "must start with a letter"},
		{"leading space", def, " login", "", "must start with a letter"},
		{"slash", anyL, "a/b", "", "must start with a letter"},
		{"non-ASCII", anyL, "café", "", "must start with a letter"},
		{"64 characters", anyL, longest, domain.Action(longest), ""},
		{"65 characters", anyL, longest + "c", "", "at most 64 characters"},
		{"64 characters not in vocabulary", def, longest, "", "unknown action"},
		{"any: punctuation allowed", anyL, "a0_.:-z", "a0_.:-z", ""},
		{"any: single letter", anyL, "x", "x", ""},
		{"any: upper case normalised", anyL, "Page.View", "page.view", ""},
		{"any: still ill-formed", anyL, "9", "", "must start with a letter"},
		{"zero vocabulary accepts any", domain.Limits{}, "whatever", "whatever", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := tt.limits.Validate(domain.NewEvent{UserID: 1, Action: tt.in}, now)
			if tt.want == "" {
				assertFields(t, err, field{"action", tt.msg})
				return
			}
			if err != nil {
				t.Fatalf("Validate(%q): %v", tt.in, err)
			}
			if e.Action != tt.want {
				t.Errorf("Action = %q, want %q", e.Action, tt.want)
			}
		})
	}
}

func TestValidateOccurredAt(t *testing.T) {
	l := domain.DefaultLimits() // 5m skew
	tests := []struct {
		name string
		in   string
		want time.Time // zero when invalid
		msg  string
	}{
		{"UTC", "2025-10-10T18:00:00Z", time.Date(2025, 10, 10, 18, 0, 0, 0, time.UTC), ""},
		{"offset converted", "2025-10-10T20:00:00+02:00", time.Date(2025, 10, 10, 18, 0, 0, 0, time.UTC), ""},
		{"negative offset", "2025-10-10T13:00:00-05:00", time.Date(2025, 10, 10, 18, 0, 0, 0, time.UTC), ""},
		{"milliseconds kept", "2025-10-10T18:00:00.123Z", time.Date(2025, 10, 10, 18, 0, 0, 123000000, time.UTC), ""},
		{"microseconds kept", "2025-10-10T18:00:00.123456Z", time.Date(2025, 10, 10, 18, 0, 0, 123456000, time.UTC), ""},
		{"nanoseconds truncated", "2025-10-10T18:00:00.123456789Z", time.Date(2025, 10, 10, 18, 0, 0, 123456000, time.UTC), ""},
		{"long ago", "1970-01-01T00:00:00Z", time.Unix(0, 0).UTC(), ""},
		{"just within skew", "2025-10-10T18:35:00.123456Z", nowNorm.Add(5 * time.Minute), ""},
		{"one microsecond past skew", "2025-10-10T18:35:00.123457Z", time.Time{}, "must not be more than 5m0s in the future"},
		{"an hour ahead", "2025-10-10T19:30:00Z", time.Time{}, "in the future"},
		{"future by offset", "2025-10-10T20:40:00+02:00", time.Time{}, "in the future"},
		{"space separator", "2025-10-10 18:00:00Z", time.Time{}, "RFC 3339"},
		{"no zone", "2025-10-10T18:00:00", time.Time{}, "RFC 3339"},
		{"date only", "2025-10-10", time.Time{}, "RFC 3339"},
		{"unix seconds", "1760121000", time.Time{}, "RFC 3339"},
		{"month 13", "2025-13-10T18:00:00Z", time.Time{}, "RFC 3339"},
		{"year zero", "0000-01-01T00:00:00Z", time.Time{}, "after year 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := l.Validate(domain.NewEvent{UserID: 1, Action: "login", OccurredAt: tt.in}, now)
			if tt.want.IsZero() {
				assertFields(t, err, field{"occurred_at", tt.msg})
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !e.OccurredAt.Equal(tt.want) || e.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt = %v, want %v in UTC", e.OccurredAt, tt.want)
			}
			if !e.RecordedAt.Equal(nowNorm) {
				t.Errorf("RecordedAt = %v: a client occurred_at must not change it", e.RecordedAt)
			}
		})
	}
}

func TestValidateMetadata(t *testing.T) {
	l := domain.Limits{Actions: domain.AnyAction(), MaxClockSkew: time.Minute, MaxMetadataBytes: 40}
	tests := []struct {
		name string
		in   string
		want string // canonical form; "" when invalid
		msg  string
	}{
		{"absent", "", "{}", ""},
		{"null", "null", "{}", ""},
		{"null with spaces", " \n null\t", "{}", ""},
		{"empty object", "{ }", "{}", ""},
		{"keys sorted, compact", `{"b": 1, "a": {"d": 2, "c": [3, 4]}}`, `{"a":{"c":[3,4],"d":2},"b":1}`, ""},
		{"numbers kept as sent", `{"n":1.50,"e":1e2}`, `{"e":1e2,"n":1.50}`, ""},
		{"exactly the limit", `{"k":"` + strings.Repeat("x", 32) + `"}`, `{"k":"` + strings.Repeat("x", 32) + `"}`, ""},
		{"one byte over the limit", `{"k":"` + strings.Repeat("x", 33) + `"}`, "", "at most 40 bytes (got 41)"},
		{"array", `[1,2]`, "", "must be a JSON object"},
		{"string", `"x"`, "", "must be a JSON object"},
		{"number", `42`, "", "must be a JSON object"},
		{"boolean", `true`, "", "must be a JSON object"},
		{"malformed", `{"a":`, "", "must be valid JSON"},
		{"two objects", `{} {}`, "", "single JSON object"},
		{"trailing bracket", `{}]`, "", "single JSON object"},
		{"trailing brace", `{"a":1}}`, "", "single JSON object"},
		{"trailing garbage", `{}x`, "", "single JSON object"},
		// The limits of PostgreSQL's numeric (checked against PostgreSQL
		// 15: each rejected literal here fails there with "value overflows
		// numeric format", each accepted one is stored).
		{"131072 integer digits", `{"a":1e131071}`, `{"a":1e131071}`, ""},
		{"131073 integer digits", `{"a":1e131072}`, "", "131072 digits before the decimal point"},
		{"leading zeros do not count", `{"a":0.0001e131075}`, `{"a":0.0001e131075}`, ""},
		{"leading zeros do not count, over", `{"a":0.0001e131076}`, "", "131072 digits"},
		{"16383 fraction digits", `{"a":1e-16383}`, `{"a":1e-16383}`, ""},
		{"16384 fraction digits", `{"a":-1e-16384}`, "", "16383 after"},
		{"fraction digits as written", `{"a":1.5e-16383}`, "", "16383 after"},
		{"zero with fraction digits", `{"a":0e-16384}`, "", "16383 after"},
		{"zero with a large exponent", `{"a":0e999999999}`, `{"a":0e999999999}`, ""},
		{"exponent too large even for zero", `{"a":0e2000000000}`, "", "digits"},
		{"exponent beyond int64", `{"a":[{"b":1e99999999999999999999}]}`, "", "digits"},
		{"NUL in key", `{"a\u0000":1}`, "", "NUL"},
		{"NUL in value", `{"a":"x\u0000"}`, "", "NUL"},
		{"NUL nested", `{"a":{"b":["ok","\u0000"]}}`, "", "NUL"},
		{"NUL in nested key", `{"a":[{"\u0000":1}]}`, "", "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			if tt.in != "" {
				raw = json.RawMessage(tt.in)
			}
			e, err := l.Validate(domain.NewEvent{UserID: 1, Action: "a", Metadata: raw}, now)
			if tt.want == "" {
				assertFields(t, err, field{"metadata", tt.msg})
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if string(e.Metadata) != tt.want {
				t.Errorf("Metadata = %s, want %s", e.Metadata, tt.want)
			}
		})
	}
}

func TestValidateNoMetadataLimit(t *testing.T) {
	l := domain.Limits{Actions: domain.AnyAction()}
	big := `{"k":"` + strings.Repeat("x", 1<<20) + `"}`
	if _, err := l.Validate(domain.NewEvent{UserID: 1, Action: "a", Metadata: json.RawMessage(big)}, now); err != nil {
		t.Errorf("MaxMetadataBytes 0 must not limit: %v", err)
	}
}

// All violations come back together, each naming its field.
func TestValidateReportsEveryViolation(t *testing.T) {
	_, err := domain.DefaultLimits().Validate(domain.NewEvent{
		ID:         "nope",
		UserID:     -3,
		Action:     "Not An Action",
		OccurredAt: "yesterday",
		Metadata:   json.RawMessage(`[]`),
	}, now)
	assertFields(t, err,
		field{"id", "UUID"},
		field{"user_id", "positive"},
		field{"action", "must start with a letter"},
		field{"occurred_at", "RFC 3339"},
		field{"metadata", "object"},
	)
	for _, f := range []string{"id:", "user_id:", "action:", "occurred_at:", "metadata:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Error() = %q does not name %s", err.Error(), f)
		}
	}
}

func TestCanonicalObject(t *testing.T) {
	in := `{"z":{"y":1,"x":[{"b":true,"a":null}]},"<":"&>","a":"\u00e9"}`
	got, err := domain.CanonicalObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"\u003c":"\u0026\u003e","a":"é","z":{"x":[{"a":null,"b":true}],"y":1}}`
	if string(got) != want {
		t.Errorf("CanonicalObject = %s, want %s", got, want)
	}
	again, err := domain.CanonicalObject(got)
	if err != nil || !bytes.Equal(again, got) {
		t.Errorf("canonical form is not a fixed point: %s, %v", again, err)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil || m["<"] != "&>" {
		t.Errorf("canonical form does not decode to the same object: %v %v", m, err)
	}
	if _, err := domain.CanonicalObject([]byte(`{"a":1,"a":2}`)); err != nil {
		t.Errorf("duplicate keys: %v", err)
	}
}

func TestSameContent(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	stored := domain.Event{UserID: 1, Action: "login", OccurredAt: at, Metadata: json.RawMessage(`{"a":1,"b":[1,2]}`)}
	with := func(f func(*domain.Event)) domain.Event {
		e := stored
		f(&e)
		return e
	}
	tests := []struct {
		name          string
		retry         domain.Event
		sentOccurred  bool
		wantSame      bool
		wantSameNoOcc bool
	}{
		{"identical", stored, true, true, true},
		{"metadata keys reordered and spaced", with(func(e *domain.Event) { e.Metadata = json.RawMessage(` {"b": [1, 2], "a": 1} `) }), true, true, true},
		{"other user", with(func(e *domain.Event) { e.UserID = 2 }), true, false, false},
		{"other action", with(func(e *domain.Event) { e.Action = "logout" }), true, false, false},
		{"other metadata", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":2,"b":[1,2]}`) }), true, false, false},
		{"array order matters", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1,"b":[2,1]}`) }), true, false, false},
		{"other occurred_at", with(func(e *domain.Event) { e.OccurredAt = at.Add(time.Microsecond) }), true, false, true},
		{"same instant, other zone", with(func(e *domain.Event) { e.OccurredAt = at.In(time.FixedZone("x", 3600)) }), true, true, true},
		{"unreadable stored metadata", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{`) }), true, false, false},
		// PostgreSQL's jsonb gives numbers back in its own spelling.
		{"numbers as jsonb spells them", with(func(e *domain.Event) {
			e.Metadata = json.RawMessage(`{"a": 1, "b": [1, 2]}`)
		}), true, true, true},
		{"array of numbers respelt", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1.000,"b":[10e-1,0.2e1]}`) }), true, true, true},
		{"numbers compare by value", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1.0000001,"b":[1,2]}`) }), true, false, false},
		{"number vs string", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":"1","b":[1,2]}`) }), true, false, false},
		{"extra key", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1,"b":[1,2],"c":null}`) }), true, false, false},
		{"null vs missing", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1,"c":[1,2]}`) }), true, false, false},
		{"array vs object", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1,"b":{"0":1,"1":2}}`) }), true, false, false},
		{"shorter array", with(func(e *domain.Event) { e.Metadata = json.RawMessage(`{"a":1,"b":[1]}`) }), true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := domain.SameContent(stored, tt.retry, tt.sentOccurred); got != tt.wantSame {
				t.Errorf("SameContent(sent occurred_at) = %v, want %v", got, tt.wantSame)
			}
			if got := domain.SameContent(stored, tt.retry, false); got != tt.wantSameNoOcc {
				t.Errorf("SameContent(no occurred_at) = %v, want %v", got, tt.wantSameNoOcc)
			}
		})
	}
}

// A retry matches what PostgreSQL's jsonb hands back for the metadata it
// stored: jsonb keeps numbers' values, not their spelling. The stored forms
// below are what PostgreSQL 15 returned for the canonical form of sent.
func TestSameContentNumberSpellings(t *testing.T) {
	l := domain.Limits{Actions: domain.AnyAction()}
	tests := []struct{ sent, stored string }{
		{`{"a":1e2,"b":1E-2,"c":-0,"d":1.50,"e":100e-2,"f":1e-7,"g":0.0}`,
			`{"a": 100, "b": 0.01, "c": 0, "d": 1.50, "e": 1.00, "f": 0.0000001, "g": 0.0}`},
		{`{"n":-12.5E+3}`, `{"n": -12500}`},
		{`{"n":[1e0,{"m":0.000e5}]}`, `{"n": [1, {"m": 0}]}`},
	}
	for _, tt := range tests {
		retry, err := l.Validate(domain.NewEvent{UserID: 1, Action: "a", Metadata: json.RawMessage(tt.sent)}, now)
		if err != nil {
			t.Fatal(err)
		}
		stored := retry
		stored.Metadata = json.RawMessage(tt.stored)
		if !domain.SameContent(stored, retry, false) {
			t.Errorf("%s stored as %s: not the same content", tt.sent, tt.stored)
		}
	}
	for _, tt := range []struct{ a, b string }{
		{`{"n":1e2}`, `{"n":1e3}`},
		{`{"n":-1}`, `{"n":1}`},
		{`{"n":0.1}`, `{"n":0.01}`},
		{`{"n":12}`, `{"n":21}`},
		{`{"n":1.2}`, `{"n":12}`},
	} {
		a := domain.Event{UserID: 1, Action: "a", Metadata: json.RawMessage(tt.a)}
		b := domain.Event{UserID: 1, Action: "a", Metadata: json.RawMessage(tt.b)}
		if domain.SameContent(a, b, false) {
			t.Errorf("%s and %s are the same content", tt.a, tt.b)
		}
	}
}

func TestParseAndFormatTime(t *testing.T) {
	got, err := domain.ParseTime("2025-10-10T20:30:00.1234567+02:00")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 10, 10, 18, 30, 0, 123456000, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("ParseTime = %v, want %v", got, want)
	}
	if s := domain.FormatTime(got); s != "2025-10-10T18:30:00.123456Z" {
		t.Errorf("FormatTime = %q", s)
	}
	if s := domain.FormatTime(time.Date(2025, 1, 1, 1, 0, 0, 0, time.FixedZone("x", -3600))); s != "2025-01-01T02:00:00Z" {
		t.Errorf("FormatTime = %q, want UTC with Z", s)
	}
	if _, err := domain.ParseTime("2025-10-10"); err == nil {
		t.Error("ParseTime accepted a date without time")
	}
	if n := domain.Normalize(now); !n.Equal(nowNorm) || n.Location() != time.UTC {
		t.Errorf("Normalize = %v", n)
	}
}

func TestValidationErrorHelpers(t *testing.T) {
	var none *domain.ValidationError
	if none.OrNil() != nil || (&domain.ValidationError{}).OrNil() != nil {
		t.Error("OrNil of no fields is not nil")
	}
	ve := domain.Invalid("a", domain.CodeMalformed, "bad %d", 1)
	ve.Add("b", domain.CodeOutOfRange, "worse %s", "x")
	p := ve.Prefix("events[3].")
	assertFields(t, p, field{"events[3].a", "bad 1"}, field{"events[3].b", "worse x"})
	if ve.Fields[0].Field != "a" {
		t.Error("Prefix changed the original")
	}
	if p.Fields[0].Code != domain.CodeMalformed || p.Fields[1].Code != domain.CodeOutOfRange {
		t.Errorf("Prefix lost the codes: %+v", p.Fields)
	}
	if got := ve.Error(); got != "invalid input: a: bad 1; b: worse x" {
		t.Errorf("Error() = %q", got)
	}
	if errors.Is(ve, domain.ErrNotFound) {
		t.Error("ValidationError matches ErrNotFound")
	}
}
