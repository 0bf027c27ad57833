package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/activityd/activityd/domain"
)

// Fuzz tests for every decoder of client input. `go test` runs the seeds;
// `go test -fuzz=FuzzX ./domain/` explores.

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70",
		"0190A8F0-8A5B-7C3E-9F1A-2B3C4D5E6F70",
		"00000000-0000-0000-0000-000000000000",
		"0190a8f08a5b7c3e9f1a2b3c4d5e6f70",
		"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g",
		"------------------------------------",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := domain.ParseID(s)
		if err != nil {
			return
		}
		// Accepted: s is the canonical form up to case.
		if !strings.EqualFold(id.String(), s) {
			t.Fatalf("ParseID(%q) = %s: not the same text", s, id)
		}
		again, err := domain.ParseID(id.String())
		if err != nil || again != id {
			t.Fatalf("ParseID(String()) = %s, %v; want %s", again, err, id)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	for _, c := range []domain.Cursor{
		{Time: nowNorm, ID: domain.NewID(now), TimeField: domain.ByRecordedAt, Order: domain.Desc},
		{Time: time.Unix(0, 0), TimeField: domain.ByOccurredAt, Order: domain.Asc},
	} {
		f.Add(c.Encode())
	}
	f.Add("")
	f.Add("AQAA")
	f.Add("AQEBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := domain.DecodeCursor(s)
		if err != nil {
			return
		}
		if c.TimeField != domain.ByRecordedAt && c.TimeField != domain.ByOccurredAt {
			t.Fatalf("decoded TimeField %q", c.TimeField)
		}
		if c.Order != domain.Desc && c.Order != domain.Asc {
			t.Fatalf("decoded Order %q", c.Order)
		}
		enc := c.Encode()
		// base64 skips line breaks; apart from them an accepted cursor is
		// exactly what Encode makes.
		if stripped := strings.NewReplacer("\r", "", "\n", "").Replace(s); enc != stripped {
			t.Fatalf("DecodeCursor(%q) re-encodes as %q", s, enc)
		}
		again, err := domain.DecodeCursor(enc)
		if err != nil || !again.Time.Equal(c.Time) || again.ID != c.ID || again.TimeField != c.TimeField || again.Order != c.Order {
			t.Fatalf("round trip %+v -> %+v, %v", c, again, err)
		}
	})
}

func FuzzDecodeCountCursor(f *testing.F) {
	for _, c := range []domain.CountCursor{
		{WindowStart: nowNorm, UserID: 42, Order: domain.Desc},
		{WindowStart: time.Unix(0, 0), UserID: 1, Order: domain.Asc},
	} {
		f.Add(c.Encode())
	}
	f.Add("")
	f.Add("YwA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := domain.DecodeCountCursor(s)
		if err != nil {
			return
		}
		if (c.Order != domain.Desc && c.Order != domain.Asc) || c.UserID < 0 {
			t.Fatalf("decoded %+v", c)
		}
		if stripped := strings.NewReplacer("\r", "", "\n", "").Replace(s); c.Encode() != stripped {
			t.Fatalf("DecodeCountCursor(%q) re-encodes as %q", s, c.Encode())
		}
	})
}

func FuzzCanonicalObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"b":1,"a":2}`, `{"a":{"c":[1,{"e":null,"d":true}],"b":"x"}}`,
		`{"n":1e400,"m":-0.0,"k":123456789012345678901234567890}`,
		`{"<>&":"\u2028\u2029","\ud800":"\udfff"}`, `{"a":"\u0000"}`,
		`[]`, `"x"`, `null`, `{}]`, `{} {}`, `{"a":1,"a":2}`, " {\"x\" : [ ] } ",
		"{\"\xff\":\"\xfe\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := domain.CanonicalObject(raw)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with output %s", err, out)
			}
			return
		}
		if !json.Valid(out) || len(out) < 2 || out[0] != '{' {
			t.Fatalf("CanonicalObject(%q) = %q: not a JSON object", raw, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("CanonicalObject(%q) = %q: not UTF-8", raw, out)
		}
		if bytes.IndexByte(out, 0) >= 0 || bytes.Contains(out, []byte(`\u0000`)) {
			t.Fatalf("CanonicalObject(%q) = %q holds a NUL", raw, out)
		}
		twice, err := domain.CanonicalObject(out)
		if err != nil {
			t.Fatalf("canonical form %q rejected: %v", out, err)
		}
		if !bytes.Equal(twice, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", raw, out, twice)
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add("", int64(1), "login", "", []byte(nil))
	f.Add("0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", int64(42), "UPLOAD_FILE", "2025-10-10T18:30:00.123456789+02:00", []byte(`{"b":[1,2],"a":{}}`))
	f.Add("00000000-0000-0000-0000-000000000000", int64(0), "", "0000-01-01T00:00:00Z", []byte(`[]`))
	f.Add("x", int64(-1), "Kelvin\u212a", "9999-12-31T23:59:59Z", []byte(`{"a":"\u0000"}`))
	f.Add("", int64(7), "viewed", "2025-10-10T18:35:00.123456Z", []byte(" null "))
	limits := domain.DefaultLimits()
	limits.MaxMetadataBytes = 256
	f.Fuzz(func(t *testing.T, id string, user int64, action, occurred string, md []byte) {
		in := domain.NewEvent{ID: id, UserID: user, Action: action, OccurredAt: occurred, Metadata: md}
		for _, l := range []domain.Limits{limits, {Actions: domain.AnyAction(), MaxClockSkew: time.Minute}} {
			e, err := l.Validate(in, now)
			if err != nil {
				var ve *domain.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields) == 0 || !errors.Is(err, domain.ErrInvalid) {
					t.Fatalf("Validate error %T %v is not a non-empty ValidationError", err, err)
				}
				if e.UserID != 0 || e.Metadata != nil || !e.ID.IsZero() {
					t.Fatalf("Validate returned %+v with an error", e)
				}
				continue
			}
			if e.ID.IsZero() || e.UserID != user || user <= 0 || e.Status != domain.StatusPending {
				t.Fatalf("accepted event %+v", e)
			}
			if id != "" && !strings.EqualFold(e.ID.String(), id) {
				t.Fatalf("client id %q became %s", id, e.ID)
			}
			if _, err := domain.AnyAction().ParseAction("a", string(e.Action)); err != nil || string(e.Action) != strings.ToLower(string(e.Action)) {
				t.Fatalf("accepted action %q is not well-formed lower case", e.Action)
			}
			if !l.Actions.Any() && !containsAction(l.Actions.Actions(), e.Action) {
				t.Fatalf("action %q not in the vocabulary", e.Action)
			}
			if e.OccurredAt.After(nowNorm.Add(l.MaxClockSkew)) || e.OccurredAt.Location() != time.UTC ||
				!e.OccurredAt.Equal(e.OccurredAt.Truncate(time.Microsecond)) {
				t.Fatalf("accepted occurred_at %v", e.OccurredAt)
			}
			if occurred == "" && !e.OccurredAt.Equal(e.RecordedAt) {
				t.Fatalf("occurred_at %v defaulted away from recorded_at %v", e.OccurredAt, e.RecordedAt)
			}
			canon, err := domain.CanonicalObject(e.Metadata)
			if err != nil || !bytes.Equal(canon, e.Metadata) {
				t.Fatalf("stored metadata %q is not canonical: %v", e.Metadata, err)
			}
		}
	})
}

func containsAction(as []domain.Action, a domain.Action) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func FuzzFilter(f *testing.F) {
	c := domain.Cursor{Time: nowNorm, ID: domain.NewID(now), TimeField: domain.ByOccurredAt, Order: domain.Asc}
	f.Add("1", "login", "DONE", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "occurred_at", "asc", "10", c.Encode(), "")
	f.Add("-1", "", "", "", "", "", "", "", "", "")
	f.Add("", "!", "x", "a", "b", "c", "d", "+", "e", "-1")
	f.Add("1e3", "", "", "", "", "", "", "", "", "1000000001")
	f.Fuzz(func(t *testing.T, user, action, status, from, to, tf, order, limit, cursor, offset string) {
		q := domain.Query{UserID: user, Status: status, From: from, To: to, TimeField: tf, Order: order, Limit: limit, Cursor: cursor, Offset: offset}
		if action != "" {
			q.Actions = []string{action}
		}
		flt, err := domain.DefaultLimits().Filter(q)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("Filter error %v does not match ErrInvalid", err)
			}
			return
		}
		if flt.Limit < 1 || flt.Limit > domain.MaxLimit || flt.UserID < 0 || flt.Offset < 0 || flt.Offset > domain.MaxOffset {
			t.Fatalf("accepted filter %+v", flt)
		}
		if !flt.From.IsZero() && !flt.To.IsZero() && flt.From.After(flt.To) {
			t.Fatalf("accepted from %v after to %v", flt.From, flt.To)
		}
		if flt.After != nil && (flt.After.Order != flt.Order || flt.After.TimeField != flt.TimeField) {
			t.Fatalf("accepted a cursor for another ordering: %+v vs %+v", flt.After, flt)
		}
	})
}

// SameContent compares metadata numbers by value: exactly when big.Rat
// says two literals are equal.
func FuzzSameContentNumbers(f *testing.F) {
	for _, p := range [][2]string{
		{"1e2", "100"}, {"1E-2", "0.01"}, {"-0", "0"}, {"1.50", "1.5"}, {"100e-2", "1.00"},
		{"1e-7", "0.0000001"}, {"12", "21"}, {"0.1", "0.01"}, {"-1", "1"}, {"0e5", "-0.0e-3"},
		{"123.456e1", "1234.56"}, {"1e1", "0.1e2"},
	} {
		f.Add(p[0], p[1])
	}
	number := func(s string) (*big.Rat, bool) {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(`{"n":` + s + `}`))
		d.UseNumber()
		if d.Decode(&m) != nil || d.More() || len(m) != 1 {
			return nil, false
		}
		if n, ok := m["n"].(json.Number); !ok || string(n) != s {
			return nil, false
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(strings.TrimLeft(s[i+1:], "+-0")) > 4 {
			return nil, false // keep big.Rat small
		}
		r, ok := new(big.Rat).SetString(s)
		return r, ok
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, ok1 := number(a)
		rb, ok2 := number(b)
		if !ok1 || !ok2 {
			return
		}
		ea := domain.Event{UserID: 1, Action: "a", Metadata: json.RawMessage(`{"n":` + a + `}`)}
		eb := domain.Event{UserID: 1, Action: "a", Metadata: json.RawMessage(`{"n":` + b + `}`)}
		want := ra.Cmp(rb) == 0
		if got := domain.SameContent(ea, eb, false); got != want {
			t.Fatalf("SameContent(%s, %s) = %v, want %v", a, b, got, want)
		}
		if got := domain.SameContent(eb, ea, false); got != want {
			t.Fatalf("SameContent(%s, %s) = %v, want %v (not symmetric)", b, a, got, want)
		}
	})
}
