package domain

import (
	"testing"
	"time"
)

func TestLegacyIDRoundTrip(t *testing.T) {
	for _, l := range []LegacyID{
		{ActivityLogger, 1}, {ActivityLogger, 7}, {EventTracking, 7},
		{ActivityLogger, 1<<31 + 5}, {EventTracking, MaxLegacyID},
	} {
		id := l.ID()
		got, ok := id.Legacy()
		if !ok || got != l {
			t.Errorf("%v: ID %s reads back as %v, %v", l, id, got, ok)
		}
		if _, ok := id.Time(); ok {
			t.Errorf("%v: ID %s claims a time", l, id)
		}
		parsed, err := ParseID(id.String())
		if err != nil || parsed != id {
			t.Errorf("%v: %s does not parse back: %v", l, id, err)
		}
	}
	if got := (LegacyID{ActivityLogger, 7}).ID().String(); got != "6c656761-6379-8001-8000-000000000007" {
		t.Errorf("activity-logger 7 = %s", got)
	}
	if (LegacyID{ActivityLogger, 7}).ID() == (LegacyID{EventTracking, 7}).ID() {
		t.Error("two systems' 7 share an id")
	}
}

func TestLegacyIDRejects(t *testing.T) {
	for _, id := range []ID{
		NewID(time.Now()), KeyID(6, "k"), {},
		(LegacyID{ActivityLogger, 0}).ID(),         // no such number
		(LegacyID{LegacySystem(9), 3}).ID(),        // no such system
		(LegacyID{ActivityLogger, 1<<63 - 1}).ID(), // above MaxLegacyID: the variant bits clash
	} {
		if l, ok := id.Legacy(); ok {
			t.Errorf("%s reads as legacy %v", id, l)
		}
	}
	for _, l := range []LegacyID{{ActivityLogger, 0}, {ActivityLogger, -4}, {0, 4}, {ActivityLogger, MaxLegacyID + 1}} {
		if l.Valid() {
			t.Errorf("%v is valid", l)
		}
	}
}
