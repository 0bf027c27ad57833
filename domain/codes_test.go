package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// codesOf returns the field:code pairs of a validation error.
func codesOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field+":"+string(f.Code))
	}
	return out
}

// Every rule a client can break reports its code, which surfaces map
// instead of the message text.
func TestValidateCodes(t *testing.T) {
	now := time.Date(2025, 10, 10, 18, 30, 0, 0, time.UTC)
	l := domain.DefaultLimits()
	l.MaxMetadataBytes = 64
	ok := domain.NewEvent{UserID: 1, Action: "login"}
	with := func(f func(*domain.NewEvent)) domain.NewEvent { in := ok; f(&in); return in }
	for _, tc := range []struct {
		name string
		in   domain.NewEvent
		want string
	}{
		{"id not a UUID", with(func(in *domain.NewEvent) { in.ID = "x" }), "id:malformed"},
		{"nil UUID", with(func(in *domain.NewEvent) { in.ID = "00000000-0000-0000-0000-000000000000" }), "id:out_of_range"},
		{"id sent empty", with(func(in *domain.NewEvent) { in.Sent = domain.MemberID }), "id:malformed"},
		{"user_id not positive", with(func(in *domain.NewEvent) { in.UserID = -3 }), "user_id:out_of_range"},
		{"user_id sent as no int64", with(func(in *domain.NewEvent) { in.UserID = 0; in.Sent = domain.MemberUserID }), "user_id:out_of_range"},
		{"no action", with(func(in *domain.NewEvent) { in.Action = "" }), "action:required"},
		{"ill-formed action", with(func(in *domain.NewEvent) { in.Action = "de leted" }), "action:malformed"},
		{"unknown action", with(func(in *domain.NewEvent) { in.Action = "dance" }), "action:unknown_action"},
		{"occurred_at sent empty", with(func(in *domain.NewEvent) { in.Sent = domain.MemberOccurredAt }), "occurred_at:malformed"},
		{"occurred_at not RFC 3339", with(func(in *domain.NewEvent) { in.OccurredAt = "yesterday" }), "occurred_at:malformed"},
		{"occurred_at in the future", with(func(in *domain.NewEvent) { in.OccurredAt = "2030-01-01T00:00:00Z" }), "occurred_at:out_of_range"},
		{"metadata too long", with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`{"a":"` + strings.Repeat("x", 80) + `"}`) }), "metadata:too_long"},
		{"metadata not an object", with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`[1]`) }), "metadata:not_object"},
		{"metadata with trailing data", with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`{} {}`) }), "metadata:not_object"},
		{"metadata not JSON", with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`{`) }), "metadata:malformed"},
		{"metadata with NUL", with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`{"a":"\u0000"}`) }), "metadata:unsupported"},
		{"required user_id missing", with(func(in *domain.NewEvent) { in.UserID = 0; in.Required = domain.MemberUserID }), "user_id:required"},
		{"required occurred_at missing", with(func(in *domain.NewEvent) { in.Required = domain.MemberOccurredAt }), "occurred_at:required"},
		{"required metadata missing", with(func(in *domain.NewEvent) { in.Required = domain.MemberMetadata }), "metadata:required"},
		{"required metadata null", with(func(in *domain.NewEvent) {
			in.Metadata = json.RawMessage("null")
			in.Required = domain.MemberMetadata
		}), "metadata:required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Validate(tc.in, now)
			if got := strings.Join(codesOf(t, err), " "); got != tc.want {
				t.Errorf("codes = %s, want %s", got, tc.want)
			}
		})
	}
	// What Required asks for, sent, passes.
	in := with(func(in *domain.NewEvent) {
		in.OccurredAt, in.Metadata = "2025-10-10T18:00:00Z", json.RawMessage(`{}`)
		in.Sent = domain.MemberUserID | domain.MemberOccurredAt | domain.MemberMetadata | domain.MemberAction
		in.Required = domain.MemberUserID | domain.MemberOccurredAt | domain.MemberMetadata
	})
	if _, err := l.Validate(in, now); err != nil {
		t.Errorf("every required member sent: %v", err)
	}
}

func TestFilterCodesAndOptions(t *testing.T) {
	l := domain.DefaultLimits()
	for _, tc := range []struct {
		name string
		q    domain.Query
		want string
	}{
		{"user_id not a number", domain.Query{UserID: "abc"}, "user_id:out_of_range"},
		{"user_id zero", domain.Query{UserID: "0"}, "user_id:out_of_range"},
		{"user_id beyond int64", domain.Query{UserID: "9223372036854775808"}, "user_id:out_of_range"},
		{"too many actions", domain.Query{Actions: make([]string, domain.MaxActionFilters+1)}, "action:too_many"},
		{"bad status", domain.Query{Status: "LATE"}, "status:not_one_of"},
		{"from after to", domain.Query{From: "2025-01-02T00:00:00Z", To: "2025-01-01T00:00:00Z"}, "from:conflict"},
		{"bad time", domain.Query{From: "x"}, "from:malformed"},
		{"bad time_field", domain.Query{TimeField: "updated_at"}, "time_field:not_one_of"},
		{"bad order", domain.Query{Order: "up"}, "order:not_one_of"},
		{"bad limit", domain.Query{Limit: "0"}, "limit:out_of_range"},
		{"foreign cursor", domain.Query{Cursor: "x"}, "cursor:malformed"},
		{"negative offset", domain.Query{Offset: "-1"}, "offset:out_of_range"},
		{"offset too large", domain.Query{Offset: "1000000001"}, "offset:out_of_range"},
		{"offset with cursor", domain.Query{Offset: "5", Cursor: domain.Cursor{TimeField: domain.ByRecordedAt, Order: domain.Desc}.Encode()}, "offset:conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Filter(tc.q)
			if got := strings.Join(codesOf(t, err), " "); got != tc.want {
				t.Errorf("codes = %s, want %s", got, tc.want)
			}
		})
	}

	f, err := l.Filter(domain.Query{UserID: "7", Offset: "1000000000", To: "2025-01-01T00:00:00Z", ToInclusive: true})
	if err != nil || f.UserID != 7 || f.Offset != domain.MaxOffset {
		t.Fatalf("filter %+v, %v", f, err)
	}
	if want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(domain.Precision); !f.To.Equal(want) {
		t.Errorf("inclusive to = %v, want one unit past it, %v", f.To, want)
	}
	f, err = l.Filter(domain.Query{To: "2025-01-01T00:00:00Z"})
	if err != nil || !f.To.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("exclusive to = %v, %v", f.To, err)
	}
}

func TestParseUserID(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "9223372036854775807": true, "0": false, "-1": false, "01": false, "+1": false, "1.0": false, "9223372036854775808": false, "": false} {
		if _, ok := domain.ParseUserID(s); ok != want {
			t.Errorf("ParseUserID(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

func TestMergeKeepsEveryProblem(t *testing.T) {
	ve := &domain.ValidationError{}
	ve.Merge(nil)
	ve.Merge(domain.Invalid("a", domain.CodeRequired, "is required"))
	ve.Merge(errors.New("boom"))
	if got := strings.Join(codesOf(t, ve), " "); got != "a:required (input):malformed" {
		t.Errorf("merged = %s", got)
	}
}

func TestEmptyMetadata(t *testing.T) {
	if got := string((domain.Event{}).MetadataOrEmpty()); got != "{}" {
		t.Errorf("no metadata = %s", got)
	}
	if got := string((domain.Event{Metadata: json.RawMessage(`{"a":1}`)}).MetadataOrEmpty()); got != `{"a":1}` {
		t.Errorf("metadata = %s", got)
	}
	e, err := domain.DefaultLimits().Validate(domain.NewEvent{UserID: 1, Action: "login"}, time.Now())
	if err != nil || string(e.Metadata) != string(domain.EmptyMetadata()) {
		t.Errorf("recorded without metadata: %s, %v", e.Metadata, err)
	}
}
