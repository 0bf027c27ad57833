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
	// ChangeErased: a user's event metadata was erased (Change.Erasure).
	ChangeErased ChangeKind = "user.erased"
)

// ChangeKinds lists every kind, in the order documentation shows them.
var ChangeKinds = []ChangeKind{ChangeRecorded, ChangeStatus, ChangeErased}

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
	// The zero Event for ChangeErased.
	Event Event
	// Erasure is what a ChangeErased erased; nil for the other kinds.
	Erasure *Erasure
}

// UserID is the user the change is about.
func (c Change) UserID() int64 {
	if c.Erasure != nil {
		return c.Erasure.UserID
	}
	return c.Event.UserID
}

// Erasure removes the metadata of a user's events recorded in [From, To)
// (zero bounds: unbounded), keeping everything else; it is itself a change
// of the feed.
type Erasure struct {
	UserID   int64
	From, To time.Time
	By       string    // who asked
	At       time.Time // when
	Count    int64     // events whose metadata it removed
}

// ChangeFilter selects changes of the feed.
type ChangeFilter struct {
	After  int64 // positions above After
	UserID int64 // 0: every user's
	Limit  int   // at most this many (> 0)
}
