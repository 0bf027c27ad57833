package httpapi

// The event-tracking surface (Go/gin predecessor, compat.md §A):
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
	md := e.Metadata
	if len(md) == 0 {
		md = json.RawMessage("{}")
	}
	return trackingEventJSON{
		ID:        e.ID.String(),
		UserID:    e.UserID,
		Timestamp: domain.FormatTime(e.OccurredAt),
		Action:    string(e.Action),
		Metadata:  md,
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
	body, done, err := s.readBody(w, r)
	if err != nil {
		s.trackingFail(w, r, asBodyError(err))
		return
	}
	defer done()
	fe := &fieldErrors{}
	in, missing := decodeTrackingEvent(body, fe)
	if err := fe.err("the request body is not a valid event"); err != nil {
		s.trackingFail(w, r, asBodyError(err))
		return
	}
	e, created, err := s.events.Record(r.Context(), principalFrom(r.Context()), in, key)
	if err != nil {
		if errors.Is(err, domain.ErrIDConflict) {
			err = &blamed{err: err, field: "Idempotency-Key"}
		}
		s.trackingFail(w, r, renameFields(err, func(f domain.FieldError) domain.FieldError {
			if f.Field == "occurred_at" {
				f.Field = "event_action_timestamp"
			}
			if why, ok := missing[f.Field]; ok {
				f.Message = why
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

// missingMetadata stands in for a metadata member missing or null: the
// domain reads those as {}, this surface requires an object (the
// predecessor stored null), and a JSON string fails the domain's own
// object rule.
var missingMetadata = json.RawMessage(`"(missing)"`)

// decodeTrackingEvent decodes the body of POST /api/event. JSON type
// errors go to fe (400 "Invalid request body"). A required member missing
// or null is replaced by a stand-in the domain rejects, so that the use
// case checks the credential's scope first and then reports it together
// with every other broken rule (400 "Validation failed"); missing maps each
// such field, by this surface's name for it, to the message to show
// instead of the domain's.
func decodeTrackingEvent(raw json.RawMessage, fe *fieldErrors) (domain.NewEvent, map[string]string) {
	var in domain.NewEvent
	ms, ok := members(raw, "", fe)
	if !ok {
		fe.add("(body)", "must be a JSON object, not %s", jsonKind(raw))
		return in, nil
	}
	sent := map[string]bool{}
	for _, m := range ms {
		switch m.name {
		case "user_id":
			in.UserID = userIDMember(m, "", fe)
		case "event_action_timestamp":
			if s, ok := stringMember(m, "", fe); ok {
				in.OccurredAt = nonEmpty(s, m)
			}
		case "action":
			in.Action, _ = stringMember(m, "", fe)
		case "metadata":
			in.Metadata = m.value
		default:
			continue
		}
		sent[m.name] = !isNull(m.value)
	}
	missing := map[string]string{}
	if !sent["user_id"] {
		in.UserID = invalidUserID
		missing["user_id"] = "is required"
	}
	if !sent["event_action_timestamp"] {
		in.OccurredAt = invalidText
		missing["event_action_timestamp"] = "is required"
	}
	if !sent["action"] {
		in.Action = "" // the domain's own "is required"
	}
	if !sent["metadata"] {
		in.Metadata = missingMetadata
		missing["metadata"] = "is required and must be a JSON object"
	}
	return in, missing
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
	q := domain.Query{From: vals.Get("from"), To: vals.Get("to"), Limit: vals.Get("limit")}
	if v := vals.Get("user_id"); v != "" {
		q.UserID = parseUserID(v)
	}
	switch q.Limit {
	case "":
		q.Limit = strconv.Itoa(trackingDefaultLimit)
	case "-1":
		q.Limit = strconv.Itoa(domain.MaxLimit)
	}
	f, err := s.compatFilter(principalFrom(r.Context()), q, vals.Get("offset"))
	if err != nil {
		s.trackingFail(w, r, renameFields(err, func(f domain.FieldError) domain.FieldError {
			if f.Field == "limit" {
				f.Message = fmt.Sprintf("must be -1 (the maximum) or an integer from 1 to %d", domain.MaxLimit)
			}
			return f
		}))
		return
	}
	b, res, err := s.events.ListView(r.Context(), f, trackingView)
	if err != nil {
		s.trackingFail(w, r, err)
		return
	}
	s.writeList(w, b, res)
}

// trackingView renders GET /api/events: a bare array, [] when empty.
var trackingView = view("tracking", func(page domain.Page) []trackingEventJSON {
	out := make([]trackingEventJSON, len(page.Events))
	for i, e := range page.Events {
		out[i] = renderTrackingEvent(e)
	}
	return out
})
