package domain

import "time"

// Status is where an event stands in the workflow
// PENDING → IN_PROGRESS → DONE.
type Status string

// The workflow's states.
const (
	StatusPending    Status = "PENDING"
	StatusInProgress Status = "IN_PROGRESS"
	StatusDone       Status = "DONE"
)

// Statuses lists every status in workflow order.
var Statuses = []Status{StatusPending, StatusInProgress, StatusDone}

// ParseStatus accepts exactly one of the three status names.
func ParseStatus(field, s string) (Status, error) {
	switch st := Status(s); st {
	case StatusPending, StatusInProgress, StatusDone:
		return st, nil
	case "":
		return "", Invalid(field, CodeRequired, "is required")
	}
	return "", Invalid(field, CodeNotOneOf, "must be one of PENDING, IN_PROGRESS, DONE")
}

// Next returns the one status this one may move to, and false for DONE.
func (s Status) Next() (Status, bool) {
	switch s {
	case StatusPending:
		return StatusInProgress, true
	case StatusInProgress:
		return StatusDone, true
	}
	return "", false
}

// CanMoveTo returns nil when s → to is a valid transition and a
// *TransitionError otherwise: no skipping, no going back, no same-to-same.
func (s Status) CanMoveTo(to Status) error {
	if next, ok := s.Next(); ok && next == to {
		return nil
	}
	return &TransitionError{From: s, To: to}
}

// Transition is one recorded status change; From is empty for the initial
// PENDING.
type Transition struct {
	From Status
	To   Status
	At   time.Time
	By   string
}
