package domain

import (
	"encoding/json"
	"strings"
	"time"
)

// Past is an event a predecessor recorded, as activityd import reads it:
// the values as stored, before any rule is checked.
type Past struct {
	ID         ID     // the event id to store it under (LegacyID.ID, or the predecessor's UUID)
	UserID     string // as stored
	Action     string // as stored, any case
	Status     string // as stored; "" means PENDING (a predecessor without statuses)
	OccurredAt time.Time
	RecordedAt time.Time
	Metadata   json.RawMessage // as stored; nil or JSON null: none
}

// Imported checks a predecessor's event against the rules every event
// obeys and returns it as it is stored: its status, times and id kept,
// its metadata canonical, its action in the vocabulary's case. Unlike
// Validate it accepts any past time, and no time in the future beyond the
// clock skew allowed at now. Every violation is reported, by field.
func (l Limits) Imported(p Past, now time.Time) (Event, error) {
	ve := &ValidationError{}
	e := Event{ID: p.ID}
	if p.ID.IsZero() {
		ve.Add("id", CodeRequired, "is required")
	}
	if n, ok := ParseUserID(strings.TrimSpace(p.UserID)); ok {
		e.UserID = n
	} else {
		ve.Add("user_id", CodeOutOfRange, "must be a positive 64-bit integer (got %q)", p.UserID)
	}
	if a, err := l.Actions.ParseAction("action", p.Action); err != nil {
		ve.Merge(err)
	} else {
		e.Action = a
	}
	switch st := Status(strings.ToUpper(strings.TrimSpace(p.Status))); st {
	case "":
		e.Status = StatusPending
	case StatusPending, StatusInProgress, StatusDone:
		e.Status = st
	default:
		ve.Add("status", CodeNotOneOf, "must be one of PENDING, IN_PROGRESS, DONE (got %q)", p.Status)
	}
	latest := Normalize(now).Add(l.MaxClockSkew)
	at := func(field string, t time.Time) time.Time {
		t = Normalize(t)
		switch {
		case t.IsZero() || t.Year() < 1:
			ve.Add(field, CodeRequired, "is required")
		case t.After(latest):
			ve.Add(field, CodeOutOfRange, "must not be more than %s in the future (got %s)", l.MaxClockSkew, FormatTime(t))
		}
		return t
	}
	e.RecordedAt = at("recorded_at", p.RecordedAt)
	e.UpdatedAt = e.RecordedAt
	if p.OccurredAt.IsZero() {
		e.OccurredAt = e.RecordedAt
	} else {
		e.OccurredAt = at("occurred_at", p.OccurredAt)
	}
	md, err := l.metadata(p.Metadata)
	ve.Merge(err)
	e.Metadata = md
	if err := ve.OrNil(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// StepsTo returns the transitions that bring an event from PENDING to s in
// the workflow's order, each at at and by by: none for PENDING, one for
// IN_PROGRESS, two for DONE. A store uses it to give an event created in a
// later status (an imported one) a history the workflow could have made.
func StepsTo(s Status, at time.Time, by string) []Transition {
	var out []Transition
	for from := StatusPending; from != s; {
		to, ok := from.Next()
		if !ok {
			break
		}
		out = append(out, Transition{From: from, To: to, At: at, By: by})
		from = to
	}
	return out
}
