package httpapi

// The predecessors' surfaces (docs/compat.md; how a surface maps onto the
// use cases: docs/architecture.md): the event-tracking API of the Go/gin
// system (compat_events.go) and the activity-logger API of the Django REST
// system (compat_logs.go).
//
// Each is a thin driving adapter over the same use cases as /v1: it only
// translates the predecessor's paths, member names, casing, status codes
// and error shapes. Validation, the action vocabulary, ownership, scopes
// and the status workflow all come from app and domain. What the two
// surfaces share lives here: authentication that answers in the surface's
// error shape, the predecessors' listing window (inclusive `to`, offset
// paging, oldest first), and problem documents with extension members.

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/domain"
)

// compatRoutes mounts both predecessor surfaces. Every path is served with
// and without a trailing slash: the predecessors' clients use both (gin
// redirected one to the other; Django answered 500 for a PATCH without it).
func (s *Server) compatRoutes(m chi.Router) {
	both := func(path string) []string { return []string{path, path + "/"} }

	// Event-tracking surface (Go/gin predecessor), docs/compat.md, "Event-tracking surface".
	m.Group(func(r chi.Router) {
		r.Use(s.allowAnonymous, s.authenticateAs(s.trackingFail)) // anonymous.go: here only
		for _, p := range both("/api/event") {
			r.Post(p, s.trackingCreate)
		}
		for _, p := range both("/api/events") {
			r.Get(p, s.trackingList)
		}
	})

	// Activity-logger surface (Django REST predecessor), docs/compat.md, "Activity-logger surface".
	m.Group(func(r chi.Router) {
		r.Use(s.authenticateAs(s.logsFail))
		for _, p := range both("/api/logs") {
			r.Post(p, s.logsCreate)
		}
		for _, p := range both("/api/logs/{user_id}") {
			r.Get(p, s.logsList)
		}
		for _, p := range both("/api/logs/update/{log_id}") {
			r.Patch(p, s.logsPatch)
		}
	})
}

// failFunc answers a request with the problem an error maps to, in one
// surface's shape.
type failFunc func(w http.ResponseWriter, r *http.Request, err error)

// authenticateAs is authenticate answering failures with fail, so that a
// 401 on a predecessor's route carries that surface's error members.
func (s *Server) authenticateAs(fail failFunc) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := s.admit(w, r)
			if err != nil {
				fail(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		})
	}
}

// bodyError marks an error found while reading the request body as JSON
// (transport, syntax, JSON types): the predecessors' "Invalid request
// body", as opposed to a value that breaks a rule.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func asBodyError(err error) error {
	if err == nil {
		return nil
	}
	return &bodyError{err: err}
}

func isBodyError(err error) bool {
	var be *bodyError
	return errors.As(err, &be)
}

// compatProblemFor is problemFor with the predecessors' status codes: a
// value that breaks a rule (422 on /v1) and a transition the workflow
// forbids (409 on /v1) are 400 on their surfaces, as they were.
func (s *Server) compatProblemFor(r *http.Request, err error) problem {
	p := s.problemFor(r, err)
	if p.Status == http.StatusUnprocessableEntity ||
		(p.Status == http.StatusConflict && errors.Is(err, domain.ErrInvalidTransition)) {
		p.Status, p.Title = http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
	}
	return p
}

// problemMembers are the members of a problem document itself; an
// extension member never overrides one.
var problemMembers = map[string]bool{"type": true, "title": true, "status": true, "detail": true, "instance": true, "errors": true}

// compatProblem is a problem document with extension members (RFC 9457
// §3.2) that a predecessor's clients read: {"error","details"} on the
// event-tracking surface, DRF's {"field":["message"]} on the activity
// logger's.
type compatProblem struct {
	problem
	ext map[string]any
}

// MarshalJSON renders the problem's members, then the extension members
// in name order.
func (c compatProblem) MarshalJSON() ([]byte, error) {
	base, err := encode(c.problem)
	if err != nil {
		return nil, err
	}
	base = bytes.TrimSpace(base)
	var b bytes.Buffer
	b.Write(base[:len(base)-1]) // without the closing brace
	for _, name := range slices.Sorted(maps.Keys(c.ext)) {
		if problemMembers[name] {
			continue
		}
		k, err := encode(name)
		if err != nil {
			return nil, err
		}
		v, err := encode(c.ext[name])
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(bytes.TrimSpace(k))
		b.WriteByte(':')
		b.Write(bytes.TrimSpace(v))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// fieldList renders a problem's field errors as "field: message; ...".
func fieldList(p problem) string {
	parts := make([]string, len(p.Errors))
	for i, e := range p.Errors {
		parts[i] = e.Field + ": " + e.Message
	}
	return strings.Join(parts, "; ")
}

// renameFields returns err with its validation fields renamed by rename
// (the domain's names → the surface's), or err itself when it is not a
// validation error.
func renameFields(err error, rename func(domain.FieldError) domain.FieldError) error {
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &domain.ValidationError{Fields: make([]domain.FieldError, len(ve.Fields))}
	for i, f := range ve.Fields {
		out.Fields[i] = rename(f)
	}
	return out
}

// compatQuery parses a predecessor route's query string: it must be
// well-formed and name each known parameter at most once. Parameters the
// route does not know are ignored, as gin and DRF ignored them.
func compatQuery(r *http.Request, known ...string) (url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: " + err.Error())
	}
	fe := &fieldErrors{}
	for _, name := range known {
		if len(vals[name]) > 1 {
			fe.add(name, codeRepeated, "must be given at most once")
		}
	}
	if err := fe.err("the query string is not valid"); err != nil {
		return nil, err
	}
	return vals, nil
}

// compatWindow is the query of a predecessor's listing: from, to, limit
// and offset as sent, in the predecessors' window: on recorded_at, oldest
// first (ties by id, so offset paging is stable), to inclusive. The same
// use case as /v1 validates and authorises it (a non-admin sees only its
// own events).
func compatWindow(vals url.Values) domain.Query {
	return domain.Query{
		From: vals.Get("from"), To: vals.Get("to"), ToInclusive: true,
		Limit: vals.Get("limit"), Offset: vals.Get("offset"),
		TimeField: string(domain.ByRecordedAt), Order: string(domain.Asc),
	}
}
