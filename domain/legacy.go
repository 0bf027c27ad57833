package domain

import (
	"encoding/binary"
	"fmt"
)

// LegacySystem names a predecessor whose ids activityd keeps.
type LegacySystem uint8

// The predecessors (docs/compat.md). Their numbers are part of the ids
// LegacyID.ID makes: never renumber them.
const (
	// ActivityLogger is the Django REST service: its log ids are the ones
	// its routes (/api/logs/...) take and answer with.
	ActivityLogger LegacySystem = 1
	// EventTracking is the Go/gin service: its events' integer event_id.
	EventTracking LegacySystem = 2
)

// String returns the system's name as the import command and /v1 spell it.
func (s LegacySystem) String() string {
	switch s {
	case ActivityLogger:
		return "activity-logger"
	case EventTracking:
		return "event-tracking"
	}
	return fmt.Sprintf("legacy-system-%d", uint8(s))
}

// MaxLegacyID is the largest legacy id an event id can spell (2^62 - 1).
const MaxLegacyID = 1<<62 - 1

// LegacyID is an id a predecessor gave an event: a positive integer within
// one system.
type LegacyID struct {
	System LegacySystem
	N      int64
}

// legacyMagic opens every id LegacyID.ID makes: "legacy" in ASCII, so such
// an id is recognisable by eye (6c656761-6379-8001-8000-000000000007 is
// activity-logger log 7) and a random or hashed UUID spells one with
// probability 2^-56.
var legacyMagic = [6]byte{'l', 'e', 'g', 'a', 'c', 'y'}

// ID returns the event id that stands for l: a version-8 UUID spelling the
// system and the number, so an event imported or created with a legacy id
// is found by it, and shows it, without a lookup table. l must be valid
// (Valid).
func (l LegacyID) ID() ID {
	var id ID
	copy(id[:6], legacyMagic[:])
	id[6] = 0x80 // version 8
	id[7] = byte(l.System)
	binary.BigEndian.PutUint64(id[8:], uint64(l.N))
	id[8] |= 0x80 // RFC 9562 variant; N < 2^62 leaves those two bits free
	return id
}

// Valid reports whether l names a known system and a number in
// [1, MaxLegacyID].
func (l LegacyID) Valid() bool {
	return (l.System == ActivityLogger || l.System == EventTracking) && l.N >= 1 && l.N <= MaxLegacyID
}

// String returns "activity-logger:7".
func (l LegacyID) String() string { return fmt.Sprintf("%s:%d", l.System, l.N) }

// Legacy returns the legacy id that id stands for (LegacyID.ID), and false
// for every other id.
func (id ID) Legacy() (LegacyID, bool) {
	if [6]byte(id[:6]) != legacyMagic || id[6] != 0x80 || id[8]>>6 != 2 {
		return LegacyID{}, false
	}
	var b [8]byte
	copy(b[:], id[8:])
	b[0] &= 0x3f
	l := LegacyID{System: LegacySystem(id[7]), N: int64(binary.BigEndian.Uint64(b[:]))}
	if !l.Valid() {
		return LegacyID{}, false
	}
	return l, true
}
