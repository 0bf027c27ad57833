package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// eventJSON is an event as the /v1 API renders it.
type eventJSON struct {
	ID         string          `json:"id"`
	UserID     int64           `json:"user_id"`
	Action     string          `json:"action"`
	Status     string          `json:"status"`
	OccurredAt string          `json:"occurred_at"`
	RecordedAt string          `json:"recorded_at"`
	UpdatedAt  string          `json:"updated_at"`
	Metadata   json.RawMessage `json:"metadata"`
	Legacy     *legacyJSON     `json:"legacy,omitempty"`
}

// legacyJSON is the id a predecessor gave an event (an imported one, or a
// log created on the activity-logger surface), shown next to its UUID.
type legacyJSON struct {
	System string `json:"system"`
	ID     int64  `json:"id"`
}

func renderLegacy(id domain.ID) *legacyJSON {
	if l, ok := id.Legacy(); ok {
		return &legacyJSON{System: l.System.String(), ID: l.N}
	}
	return nil
}

func renderEvent(e domain.Event) eventJSON {
	return eventJSON{
		Legacy:     renderLegacy(e.ID),
		ID:         e.ID.String(),
		UserID:     e.UserID,
		Action:     string(e.Action),
		Status:     string(e.Status),
		OccurredAt: domain.FormatTime(e.OccurredAt),
		RecordedAt: domain.FormatTime(e.RecordedAt),
		UpdatedAt:  domain.FormatTime(e.UpdatedAt),
		Metadata:   e.Metadata,
	}
}

// transitionJSON is one entry of an event's status history; from is null
// for the initial PENDING.
type transitionJSON struct {
	From *string `json:"from"`
	To   string  `json:"to"`
	At   string  `json:"at"`
	By   string  `json:"by"`
}

// eventWithHistory is GET /v1/events/{id}.
type eventWithHistory struct {
	eventJSON
	StatusHistory []transitionJSON `json:"status_history"`
}

func renderHistory(h []domain.Transition) []transitionJSON {
	out := make([]transitionJSON, len(h))
	for i, t := range h {
		out[i] = transitionJSON{To: string(t.To), At: domain.FormatTime(t.At), By: t.By}
		if t.From != "" {
			from := string(t.From)
			out[i].From = &from
		}
	}
	return out
}

// idempotencyKey returns the Idempotency-Key header, "" when absent.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vals[0]), nil
	}
	return "", badRequest("send at most one Idempotency-Key header",
		fieldProblem{Field: "Idempotency-Key", Code: codeRepeated, Message: "must be given at most once"})
}

// createEvent is POST /v1/events.
func (s *Server) createEvent(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := idempotencyKey(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in, done, err := decodeBody(s, w, r, "event", decodeEvent)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer done()
	in.IdempotencyKey = key
	e, created, err := s.events.Record(r.Context(), principalFrom(r.Context()), in)
	if err != nil {
		if errors.Is(err, domain.ErrIDConflict) {
			field := "id"
			if !in.Sent.Has(domain.MemberID) {
				field = "Idempotency-Key"
			}
			err = &blamed{err: err, field: field}
		}
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK // an idempotent retry: the stored event
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/events/"+e.ID.String())
	}
	writeRaw(w, status, "application/json", renderEventBytes(e))
}

// createBatch is POST /v1/events/batch.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(r.Header.Values("Idempotency-Key")) > 0 {
		s.fail(w, r, badRequest("a batch does not take an Idempotency-Key header; give each event an id to make it idempotent",
			fieldProblem{Field: "Idempotency-Key", Code: codeUnknownField, Message: "is not supported on a batch; give each event an id"}))
		return
	}
	raws, done, err := decodeBody(s, w, r, "batch", decodeBatch)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer done()
	if len(raws) > app.MaxBatch {
		// Checked before decoding the items, which could be many.
		s.fail(w, r, domain.Invalid("events", domain.CodeTooMany, "must hold at most %d events (got %d)", app.MaxBatch, len(raws)))
		return
	}
	fe := &fieldErrors{}
	ins := make([]domain.NewEvent, len(raws))
	for i, raw := range raws {
		ins[i] = decodeNewEvent(raw, "events["+strconv.Itoa(i)+"].", fe)
	}
	if err := fe.err("the request body is not a valid batch"); err != nil {
		s.fail(w, r, err)
		return
	}
	items, err := s.events.RecordBatch(r.Context(), principalFrom(r.Context()), ins)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n := 16
	for _, it := range items {
		n += 32 + eventSize(it.Event)
	}
	b := append(make([]byte, 0, n), `{"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		switch {
		case it.Err != nil:
			err := it.Err
			if errors.Is(err, domain.ErrIDConflict) {
				err = &blamed{err: err, field: fmt.Sprintf("events[%d].id", i)}
			}
			p := s.problemFor(r, err)
			pb, perr := encode(p)
			if perr != nil {
				s.fail(w, r, perr)
				return
			}
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(p.Status), 10)
			b = append(b, `,"error":`...)
			b = append(b, pb[:len(pb)-1]...) // without encode's newline
		default:
			status := http.StatusOK
			if it.Created {
				status = http.StatusCreated
			}
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(status), 10)
			b = append(b, `,"event":`...)
			b = appendEvent(b, it.Event)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	writeRaw(w, http.StatusOK, "application/json", b)
}

// listEvents is GET /v1/events and GET /v1/users/{user_id}/events.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	vals, err := listingParams(r, eventListing)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.list(w, r, listQuery(vals))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, q domain.Query) {
	l, err := s.events.List(r.Context(), principalFrom(r.Context()), q, v1View.name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeListing(w, r, l, v1View, s.fail)
}

// v1View renders /v1 listings.
var v1View = view[domain.Page]{name: "v1", render: renderPageBytes}

// getEvent is GET /v1/events/{id}.
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	e, h, err := s.events.Get(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, eventWithHistory{eventJSON: renderEvent(e), StatusHistory: renderHistory(h)})
}

// patchEvent is PATCH /v1/events/{id}: a status transition.
func (s *Server) patchEvent(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	status, done, err := decodeBody(s, w, r, "status change", decodeStatusChange)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer done()
	e, err := s.events.Transition(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"), status)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, "application/json", renderEventBytes(e))
}
