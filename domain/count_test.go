package domain

import (
	"strings"
	"testing"
	"time"
)

func TestCountCursorRoundTrip(t *testing.T) {
	for _, c := range []CountCursor{
		{WindowStart: time.Date(2025, 10, 10, 16, 0, 0, 0, time.UTC), UserID: 1 << 40, Order: Desc},
		{WindowStart: time.Date(1999, 1, 1, 0, 0, 0, 1000, time.UTC), UserID: 1, Order: Asc},
	} {
		got, err := DecodeCountCursor(c.Encode())
		if err != nil || !got.WindowStart.Equal(c.WindowStart) || got.UserID != c.UserID || got.Order != c.Order {
			t.Errorf("round trip of %+v = %+v, %v", c, got, err)
		}
	}
	ev := Cursor{Time: time.Now(), TimeField: ByRecordedAt, Order: Desc}.Encode()
	for _, bad := range []string{"", "x", "%%%", ev, CountCursor{UserID: -1}.Encode()} {
		if _, err := DecodeCountCursor(bad); err == nil {
			t.Errorf("DecodeCountCursor(%q) accepted", bad)
		}
	}
}

func TestParseCountQuery(t *testing.T) {
	f, err := ParseCountQuery(CountQuery{})
	if err != nil || f.Order != Desc || f.Limit != DefaultLimit || f.UserID != 0 || f.After != nil {
		t.Fatalf("defaults: %+v, %v", f, err)
	}
	asc := CountCursor{WindowStart: time.Unix(0, 0).UTC(), UserID: 3, Order: Asc}.Encode()
	f, err = ParseCountQuery(CountQuery{UserID: "7", From: "2025-10-10T10:00:00+02:00", To: "2025-10-11T00:00:00Z", Order: "asc", Limit: "1000", Cursor: asc})
	if err != nil || f.UserID != 7 || !f.From.Equal(time.Date(2025, 10, 10, 8, 0, 0, 0, time.UTC)) || f.Order != Asc || f.Limit != 1000 || f.After == nil || f.After.UserID != 3 {
		t.Fatalf("values: %+v, %v", f, err)
	}
	for _, tc := range []struct {
		q      CountQuery
		fields string
	}{
		{CountQuery{UserID: "-1"}, "user_id"},
		{CountQuery{From: "yesterday", To: "soon"}, "from,to"},
		{CountQuery{From: "2025-10-11T00:00:00Z", To: "2025-10-10T00:00:00Z"}, "from"},
		{CountQuery{Order: "random"}, "order"},
		{CountQuery{Limit: "0"}, "limit"},
		{CountQuery{Limit: "1001"}, "limit"},
		{CountQuery{Cursor: "nope"}, "cursor"},
		{CountQuery{Cursor: asc}, "cursor"}, // an asc cursor for the default desc order
	} {
		_, err := ParseCountQuery(tc.q)
		ve, ok := err.(*ValidationError)
		if !ok {
			t.Errorf("%+v: err = %v, want a ValidationError", tc.q, err)
			continue
		}
		var got []string
		for _, f := range ve.Fields {
			got = append(got, f.Field)
		}
		if strings.Join(got, ",") != tc.fields {
			t.Errorf("%+v: fields %v, want %s", tc.q, got, tc.fields)
		}
	}
}
