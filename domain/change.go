package domain

import "time"

// ChangeKind names what a change of the feed did to its event.
type ChangeKind string

// The kinds of change. Later kinds (an erasure) are added here; readers
// skip kinds they do not know.
const (
	// ChangeRecorded: the event was stored (created, or imported).
	ChangeRecorded ChangeKind = "event.recorded"
	// ChangeStatus: the event's status changed.
	ChangeStatus ChangeKind = "event.status_changed"
)

// ChangeKinds lists every kind, in the order documentation shows them.
var ChangeKinds = []ChangeKind{ChangeRecorded, ChangeStatus}

// Valid reports whether k is a known kind.
func (k ChangeKind) Valid() bool {
	for _, c := range ChangeKinds {
		if k == c {
			return true
		}
	}
	return false
}

// Change is one entry of the change feed. Positions are assigned in commit
// order, one total and strictly increasing order over every change: once a
// reader has seen position P, no change below P can appear.
type Change struct {
	Position int64
	Kind     ChangeKind
	// At is when the change happened: the event's RecordedAt for
	// ChangeRecorded, the transition's time for ChangeStatus.
	At time.Time
	// Event is the event as of this change: its status and UpdatedAt are
	// those the change left, the rest (metadata included) as stored now.
	Event Event
}

// ChangeFilter selects changes of the feed.
type ChangeFilter struct {
	After  int64 // positions above After
	UserID int64 // 0: every user's
	Limit  int   // at most this many (> 0)
}
