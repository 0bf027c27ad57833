package httpapi

// The event-tracking surface (Go/gin predecessor, docs/compat.md, "Event-tracking surface"):
//
//	POST /api/event   {"user_id","event_action_timestamp","action","metadata"} → 201 {"createdAt","id"}
//	GET  /api/events  ?user_id=&from=&to=&limit=&offset= → 200 [{"id","user_id","event_action_timestamp","action","metadata"}]
//
// Errors are problem documents carrying the predecessor's members as
// extensions: {"error":"Validation failed"|"Invalid request body"|<status
// text>, "details":"<which fields, why>"}. A value that breaks a rule is
// 400 here, as it was (422 on /v1).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/activityd/activityd/domain"
)

// The predecessor's error members.
const (
	trackingValidationFailed = "Validation failed"
	trackingInvalidBody      = "Invalid request body"
)

// trackingDefaultLimit is the page size when limit is not sent; limit=-1
// asks for the most a page may hold (domain.MaxLimit).
const trackingDefaultLimit = 100

// trackingCreatedJSON answers POST /api/event.
type trackingCreatedJSON struct {
	CreatedAt string `json:"createdAt"` // recorded_at
	ID        string `json:"id"`
}

// trackingEventJSON is one event as GET /api/events lists it.
type trackingEventJSON struct {
	ID        string          `json:"id"`
	UserID    int64           `json:"user_id"`
	Timestamp string          `json:"event_action_timestamp"` // occurred_at
	Action    string          `json:"action"`                 // lower case, as the domain keeps it
	Metadata  json.RawMessage `json:"metadata"`
}

func renderTrackingEvent(e domain.Event) trackingEventJSON {
	return trackingEventJSON{
		ID:        e.ID.String(),
		UserID:    e.UserID,
		Timestamp: domain.FormatTime(e.OccurredAt),
		Action:    string(e.Action),
		Metadata:  e.Metadata,
	}
}

// trackingFail answers with a problem document that also carries the
// predecessor's {"error","details"} members.
func (s *Server) trackingFail(w http.ResponseWriter, r *http.Request, err error) {
	p := s.compatProblemFor(r, err)
	errMember, details := http.StatusText(p.Status), p.Detail
	if p.Status == http.StatusBadRequest {
		errMember = trackingValidationFailed
		if isBodyError(err) {
			errMember = trackingInvalidBody
		}
		if len(p.Errors) > 0 {
			details = fieldList(p)
		}
	}
	s.writeProblem(w, r, compatProblem{problem: p, ext: map[string]any{"error": errMember, "details": details}}, p.Status)
}

// trackingCreate is POST /api/event. All four members are required;
// metadata must be a JSON object. Other members are ignored, as gin's
// binding ignored them (a misspelt member still fails: the one it stands
// for is missing). The query string is ignored.
func (s *Server) trackingCreate(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r)
	if err != nil {
		s.trackingFail(w, r, err)
		return
	}
	in, done, err := decodeBody(s, w, r, "event", decodeTrackingEvent)
	if err != nil {
		s.trackingFail(w, r, asBodyError(err))
		return
	}
	defer done()
	in.IdempotencyKey = key
	e, created, err := s.events.Record(r.Context(), principalFrom(r.Context()), in)
	if err != nil {
		if errors.Is(err, domain.ErrIDConflict) {
			err = &blamed{err: err, field: "Idempotency-Key"}
		}
		s.trackingFail(w, r, renameFields(err, func(f domain.FieldError) domain.FieldError {
			if f.Field == "occurred_at" {
				f.Field = "event_action_timestamp"
			}
			if f.Field == "metadata" && f.Code == domain.CodeRequired {
				f.Message = "is required and must be a JSON object" // the predecessor stored null
			}
			return f
		}))
		return
	}
	status := http.StatusOK // an idempotent retry (Idempotency-Key): the stored event
	if created {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, trackingCreatedJSON{CreatedAt: domain.FormatTime(e.RecordedAt), ID: e.ID.String()})
}

// decodeTrackingEvent decodes the body of POST /api/event. JSON type
// errors go to fe (400 "Invalid request body"). Every member but action is
// Required (action is always): one missing or null is the domain's to
// report, after the use case has checked the credential's scope, together
// with every other broken rule (400 "Validation failed").
func decodeTrackingEvent(raw json.RawMessage, fe *fieldErrors) domain.NewEvent {
	in := domain.NewEvent{Required: domain.MemberUserID | domain.MemberOccurredAt | domain.MemberMetadata}
	ms, ok := members(raw, "", fe)
	if !ok {
		return in
	}
	for _, m := range ms {
		var sent domain.Members
		switch m.name {
		case "user_id":
			in.UserID = userIDMember(m, "", fe)
			sent = domain.MemberUserID
		case "event_action_timestamp":
			in.OccurredAt, _ = stringMember(m, "", fe)
			sent = domain.MemberOccurredAt
		case "action":
			in.Action, _ = stringMember(m, "", fe)
			sent = domain.MemberAction
		case "metadata":
			in.Metadata = m.value
			sent = domain.MemberMetadata
		default:
			continue
		}
		if !isNull(m.value) {
			in.Sent |= sent
		}
	}
	return in
}

// trackingList is GET /api/events: the events recorded (stored) between
// from and to, both inclusive, oldest first, ties broken by id. user_id is
// optional: without it a non-admin lists its own events and an admin every
// user's; another user's is 403 to a non-admin.
func (s *Server) trackingList(w http.ResponseWriter, r *http.Request) {
	vals, err := compatQuery(r, "user_id", "from", "to", "limit", "offset")
	if err != nil {
		s.trackingFail(w, r, err)
		return
	}
	q := compatWindow(vals)
	q.UserID = vals.Get("user_id")
	switch q.Limit {
	case "":
		q.Limit = strconv.Itoa(trackingDefaultLimit)
	case "-1":
		q.Limit = strconv.Itoa(domain.MaxLimit)
	}
	l, err := s.events.List(r.Context(), principalFrom(r.Context()), q, trackingView.name)
	if err != nil {
		s.trackingFail(w, r, renameFields(err, func(f domain.FieldError) domain.FieldError {
			if f.Field == "limit" {
				f.Message = fmt.Sprintf("must be -1 (the maximum) or an integer from 1 to %d", domain.MaxLimit)
			}
			return f
		}))
		return
	}
	writeListing(w, r, l, trackingView, s.trackingFail)
}

// trackingView renders GET /api/events: a bare array, [] when empty.
var trackingView = jsonView("tracking", func(page domain.Page) []trackingEventJSON {
	out := make([]trackingEventJSON, len(page.Events))
	for i, e := range page.Events {
		out[i] = renderTrackingEvent(e)
	}
	return out
})
