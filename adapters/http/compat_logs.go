package httpapi

// The activity-logger surface (Django REST predecessor, docs/compat.md, "Activity-logger surface"):
//
//	POST  /api/logs/                  {"action","metadata"} → 201 log
//	GET   /api/logs/{user_id}/        ?action=&start=&end=&from=&to=&limit=&offset= → 200 [log, ...]
//	PATCH /api/logs/update/{log_id}/  {"status"} → 200 log
//
// (each with or without the trailing slash), where a log is
// {"id","user","action","timestamp","metadata","status"} with the action
// in upper case. The user is always the authenticated principal's.
//
// Errors are problem documents; a 400 also carries DRF's members, one per
// field: {"action":["..."]} ("non_field_errors" for the body as a whole),
// and on the PATCH route the predecessor's {"error":"Invalid status"} or
// {"error":"Invalid status transition: DONE -> PENDING"}. A value that
// breaks a rule is 400 here, as it was with DRF (422 on /v1), and so is a
// transition the workflow forbids (409 on /v1).

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/domain"
)

// The predecessor's error members on PATCH /api/logs/update/{log_id}/.
const (
	logsInvalidStatus = "Invalid status"
	logsInvalidBody   = "Invalid request body"
	logsStatusRace    = "Status changed concurrently: read the log and retry"
)

// logJSON is one log as this surface renders it.
type logJSON struct {
	ID        logID           `json:"id"`
	User      int64           `json:"user"`
	Action    string          `json:"action"`    // upper case
	Timestamp string          `json:"timestamp"` // recorded_at
	Metadata  json.RawMessage `json:"metadata"`
	Status    string          `json:"status"`
}

// logID renders an event's id as the activity-logger's clients hold it: an
// integer for a log it numbered (imported, or created on this surface),
// the UUID for an event recorded elsewhere.
type logID domain.ID

func (id logID) MarshalJSON() ([]byte, error) {
	if l, ok := domain.ID(id).Legacy(); ok && l.System == domain.ActivityLogger {
		return strconv.AppendInt(nil, l.N, 10), nil
	}
	b := append(make([]byte, 0, 38), '"')
	return append(domain.ID(id).AppendText(b), '"'), nil
}

// parseLogID reads a log id from a path: an integer names an
// activity-logger log number, anything else is taken as a UUID (an
// unknown or malformed one is a 404 further on).
func parseLogID(s string) string {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(n, 10) == s {
		if l := (domain.LegacyID{System: domain.ActivityLogger, N: n}); l.Valid() {
			return l.ID().String()
		}
	}
	return s
}

func renderLog(e domain.Event) logJSON {
	return logJSON{
		ID:        logID(e.ID),
		User:      e.UserID,
		Action:    strings.ToUpper(string(e.Action)), // ASCII: actions are [a-z0-9_.:-]
		Timestamp: domain.FormatTime(e.RecordedAt),
		Metadata:  e.Metadata,
		Status:    string(e.Status),
	}
}

// logsFail answers with a problem document that also carries DRF's
// per-field members and, on the PATCH route, the predecessor's error
// member.
func (s *Server) logsFail(w http.ResponseWriter, r *http.Request, err error) {
	p := s.compatProblemFor(r, err)
	ext := map[string]any{}
	if p.Status == http.StatusBadRequest {
		drf := map[string][]string{}
		for _, e := range p.Errors {
			name := e.Field
			if name == "(body)" {
				name = "non_field_errors"
			}
			drf[name] = append(drf[name], e.Message)
		}
		for name, msgs := range drf {
			ext[name] = msgs
		}
	}
	if r.Method == http.MethodPatch {
		var te *domain.TransitionError
		switch {
		case errors.As(err, &te):
			ext["error"] = "Invalid status transition: " + string(te.From) + " -> " + string(te.To)
		case p.Status == http.StatusBadRequest && isBodyError(err):
			ext["error"] = logsInvalidBody
		case p.Status == http.StatusBadRequest:
			ext["error"] = logsInvalidStatus
		case errors.Is(err, domain.ErrStatusConflict):
			ext["error"] = logsStatusRace
		}
	}
	s.writeProblem(w, r, compatProblem{problem: p, ext: ext}, p.Status)
}

// logsCreate is POST /api/logs/: record an action for the authenticated
// user. id, user, timestamp, status and any other member are ignored, as
// DRF ignored read-only and unknown fields; the query string too.
func (s *Server) logsCreate(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r)
	if err != nil {
		s.logsFail(w, r, err)
		return
	}
	in, done, err := decodeFormBody(s, w, r, "log", logEntryForm, decodeLogEntry)
	if err != nil {
		s.logsFail(w, r, asBodyError(err))
		return
	}
	defer done()
	p := principalFrom(r.Context())
	in.UserID = p.UserID
	in.IdempotencyKey = key
	in.Legacy = domain.ActivityLogger // an integer id, as its clients expect
	e, created, err := s.events.Record(r.Context(), p, in)
	if err != nil {
		if errors.Is(err, domain.ErrIDConflict) {
			err = &blamed{err: err, field: "Idempotency-Key"}
		}
		// The only user_id problem possible here: an admin credential
		// bound to no user.
		s.logsFail(w, r, renameFields(err, func(f domain.FieldError) domain.FieldError {
			if f.Field == "user_id" {
				return domain.FieldError{Field: "user", Code: f.Code, Message: "this credential is bound to no user, and this route " +
					"records for the authenticated user only: use that user's credential, or POST /v1/events with a user_id"}
			}
			return f
		}))
		return
	}
	status := http.StatusOK // an idempotent retry (Idempotency-Key): the stored log
	if created {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, renderLog(e))
}

// logEntryForm is what POST /api/logs/ reads from a form body (DRF's
// FormParser and MultiPartParser): action, and metadata as JSON text
// (DRF's JSONField); an empty metadata field is absent ({}).
var logEntryForm = formFields{text: []string{"action"}, json: []string{"metadata"}}

// decodeLogEntry decodes the body of POST /api/logs/: action (any case)
// and metadata (optional; null or absent is {}). A form body comes here
// as the JSON object it stands for (logEntryForm).
func decodeLogEntry(raw json.RawMessage, fe *fieldErrors) domain.NewEvent {
	var in domain.NewEvent
	ms, ok := members(raw, "", fe)
	if !ok {
		return in
	}
	for _, m := range ms {
		switch m.name {
		case "action":
			in.Action, _ = stringMember(m, "", fe)
		case "metadata":
			in.Metadata = m.value
		}
	}
	return in
}

// logsDefaultLimit is the page size when limit is not sent: the most a
// page may hold (the predecessor returned every log).
const logsDefaultLimit = domain.MaxLimit

// logsList is GET /api/logs/{user_id}/: a user's logs, oldest first, ties
// broken by id. action is case-insensitive; start/end (or from/to) are
// inclusive, RFC 3339 times or dates (a date end means the whole day). A
// non-admin may list only its own logs (403 otherwise).
func (s *Server) logsList(w http.ResponseWriter, r *http.Request) {
	user, err := pathUser(r)
	if err != nil {
		s.logsFail(w, r, err)
		return
	}
	vals, err := compatQuery(r, "action", "start", "end", "from", "to", "limit", "offset")
	if err != nil {
		s.logsFail(w, r, err)
		return
	}
	ve := &domain.ValidationError{}
	fromName, from := logsParam(vals.Get("start"), vals.Get("from"), "start", "from", ve)
	toName, to := logsParam(vals.Get("end"), vals.Get("to"), "end", "to", ve)
	if err := ve.OrNil(); err != nil {
		s.logsFail(w, r, err)
		return
	}
	q := compatWindow(vals)
	q.UserID, q.From, q.To = user, logsTime(from, false), logsTime(to, true)
	if q.Limit == "" {
		q.Limit = strconv.Itoa(logsDefaultLimit)
	}
	if a := vals.Get("action"); a != "" {
		q.Actions = []string{a} // case-insensitive: the domain lowers it
	}
	l, err := s.events.List(r.Context(), principalFrom(r.Context()), q, logsView.name)
	if err != nil {
		s.logsFail(w, r, renameFields(err, func(fe domain.FieldError) domain.FieldError {
			switch fe.Field {
			case "from", "to":
				switch fe.Code {
				case domain.CodeMalformed:
					fe.Message = "must be an RFC 3339 time or a date (YYYY-MM-DD); a '+' offset must be URL-encoded as %2B"
				case domain.CodeConflict: // from after to
					fe.Message = "must not be after " + toName
				}
				if fe.Field == "from" {
					fe.Field = fromName
				} else {
					fe.Field = toName
				}
			}
			return fe
		}))
		return
	}
	writeListing(w, r, l, logsView, s.logsFail)
}

// logsView renders GET /api/logs/{user_id}: a bare array, [] when empty.
var logsView = jsonView("logs", func(page domain.Page) []logJSON {
	out := make([]logJSON, len(page.Events))
	for i, e := range page.Events {
		out[i] = renderLog(e)
	}
	return out
})

// logsParam picks a parameter sent under either of two names (start or
// from, end or to) and returns the name it was sent under.
func logsParam(a, b, aName, bName string, ve *domain.ValidationError) (string, string) {
	switch {
	case a != "" && b != "":
		ve.Add(aName, domain.CodeConflict, "give %s or %s, not both", aName, bName)
		return aName, a
	case b != "":
		return bName, b
	}
	return aName, a
}

// logsTime turns a date (YYYY-MM-DD, UTC) into the RFC 3339 time that
// makes the range cover the whole day: its first instant for a start, its
// last for an end (both are inclusive). Anything else is passed on for
// the domain to parse.
func logsTime(s string, end bool) string {
	if len(s) != len(time.DateOnly) {
		return s
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return s
	}
	if end {
		d = d.AddDate(0, 0, 1).Add(-domain.Precision)
	}
	return domain.FormatTime(d)
}

// logsPatch is PATCH /api/logs/update/{log_id}/: {"status":"IN_PROGRESS"}
// moves the log along the workflow and answers with the whole log. Other
// members are ignored: this route changes the status only (PUT, which
// could rewrite the action, is not offered). Another user's log is 404 to
// a non-admin.
func (s *Server) logsPatch(w http.ResponseWriter, r *http.Request) {
	status, done, err := decodeFormBody(s, w, r, "status change", logStatusForm, decodeLogStatus)
	if err != nil {
		s.logsFail(w, r, asBodyError(err))
		return
	}
	defer done()
	e, err := s.events.Transition(r.Context(), principalFrom(r.Context()), parseLogID(chi.URLParam(r, "log_id")), status)
	if err != nil {
		s.logsFail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, renderLog(e))
}

// logStatusForm is what PATCH /api/logs/update/{log_id}/ reads from a
// form body: status.
var logStatusForm = formFields{text: []string{"status"}}

// decodeLogStatus decodes {"status":"..."} (a form body as the JSON
// object it stands for, logStatusForm). A status that is not a string
// is passed on as the JSON text sent (5, true, {}), which no status is
// spelt as: the domain rejects it as it rejects an unknown status, after
// checking the credential's scope.
func decodeLogStatus(raw json.RawMessage, fe *fieldErrors) string {
	ms, ok := members(raw, "", fe)
	if !ok {
		return ""
	}
	var status string
	for _, m := range ms {
		if m.name != "status" {
			continue
		}
		switch jsonKind(m.value) {
		case "a string":
			if err := json.Unmarshal(m.value, &status); err != nil {
				status = string(m.value)
			}
		case "null":
		default:
			status = string(bytes.TrimSpace(m.value))
		}
	}
	return status
}
