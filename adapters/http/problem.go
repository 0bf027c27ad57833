package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/activityd/activityd/domain"
)

// ProblemTypeBase prefixes the type URI of every problem document this API
// returns. The fragment names the kind of problem: malformed-request,
// ambiguous-framing, unauthenticated, forbidden, not-found,
// method-not-allowed, invalid-transition, status-conflict, id-conflict,
// body-too-large,
// unsupported-media-type, validation, too-many-failures, rate-limited,
// unavailable or internal (to be documented in docs/problems.md).
const ProblemTypeBase = "https://github.com/activityd/activityd/blob/main/docs/problems.md#"

// The kinds of problem, as the fragment of a problem's type URI.
const (
	slugMalformed            = "malformed-request"      // 400: the body or query cannot be read as the request's shape
	slugAmbiguousFraming     = "ambiguous-framing"      // 400: where the request ends is ambiguous (framing.go); the connection is closed
	slugUnauthenticated      = "unauthenticated"        // 401
	slugForbidden            = "forbidden"              // 403
	slugNotFound             = "not-found"              // 404
	slugMethodNotAllowed     = "method-not-allowed"     // 405
	slugInvalidTransition    = "invalid-transition"     // 409: the workflow forbids the status change
	slugStatusConflict       = "status-conflict"        // 409: another request changed the status first
	slugIDConflict           = "id-conflict"            // 409: id or Idempotency-Key used with other content
	slugNotCheckpointed      = "not-checkpointed"       // 409: no checkpoint covers the event yet
	slugChainBroken          = "chain-broken"           // 409: the history does not verify; no proof
	slugNotProvable          = "not-provable"           // 409: retention removed what a proof needs
	slugTooLarge             = "body-too-large"         // 413
	slugUnsupportedMediaType = "unsupported-media-type" // 415
	slugValidation           = "validation"             // 422: a value breaks a rule
	slugTooManyFailures      = "too-many-failures"      // 429: too many failed authentications from the client's address
	slugRateLimited          = "rate-limited"           // 429: the principal is over its rate limit
	slugUnavailable          = "unavailable"            // 503: try again later
	slugOverloaded           = "overloaded"             // 503: too many requests in flight
	slugClientClosed         = "client-closed"          // 499: the client went away before the answer
	slugInternal             = "internal"               // 500: a bug; details are in the log only
)

// statusClientClosed is the status of a request its client abandoned
// (nginx's 499 "Client Closed Request"): nobody reads the answer, and
// logs and metrics must not count it as the server's failure.
const statusClientClosed = 499

// retryAfterSeconds is what a 503 tells the client to wait.
const retryAfterSeconds = 1

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail"`
	Errors []fieldProblem `json:"errors,omitempty"`
}

// fieldProblem names one field (body member, query parameter or header)
// to blame, and the rule it broke: a domain.Code that clients may switch
// on, and a message for people.
type fieldProblem struct {
	Field   string      `json:"field"`
	Code    domain.Code `json:"code"`
	Message string      `json:"message"`
}

func newProblem(status int, slug, detail string) problem {
	title := http.StatusText(status)
	if status == statusClientClosed {
		title = "Client Closed Request"
	}
	return problem{Type: ProblemTypeBase + slug, Title: title, Status: status, Detail: detail}
}

// httpError is a problem the adapter itself detects (decoding, content
// type, routing), with its status decided here rather than by the core.
type httpError struct {
	status int
	slug   string
	detail string
	fields []fieldProblem
}

func (e *httpError) Error() string { return e.detail }

// badRequest is a 400: input that cannot be read as the request's shape.
func badRequest(detail string, fields ...fieldProblem) *httpError {
	return &httpError{status: http.StatusBadRequest, slug: slugMalformed, detail: detail, fields: fields}
}

// blamed names the field an error is about when the error itself cannot
// (e.g. an id conflict caused by the Idempotency-Key header).
type blamed struct {
	err   error
	field string
}

func (b *blamed) Error() string { return b.err.Error() }
func (b *blamed) Unwrap() error { return b.err }

// problemFor is the one place where an error becomes an HTTP status and a
// problem document. Errors the client cannot act on are logged and
// rendered without any internal detail.
func (s *Server) problemFor(r *http.Request, err error) problem {
	var (
		he  *httpError
		mbe *http.MaxBytesError
		ve  *domain.ValidationError
		te  *domain.TransitionError
		p   problem
	)
	switch {
	case errors.As(err, &he):
		p = newProblem(he.status, he.slug, he.detail)
		p.Errors = he.fields
	case errors.As(err, &mbe):
		p = newProblem(http.StatusRequestEntityTooLarge, slugTooLarge,
			"the request body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
	case errors.As(err, &ve):
		p = newProblem(http.StatusUnprocessableEntity, slugValidation, ve.Error())
		for _, f := range ve.Fields {
			p.Errors = append(p.Errors, fieldProblem{Field: f.Field, Code: f.Code, Message: f.Message})
		}
	case errors.Is(err, domain.ErrInvalid):
		p = newProblem(http.StatusUnprocessableEntity, slugValidation, err.Error())
	case errors.Is(err, domain.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.WarnContext(r.Context(), "dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		p = newProblem(http.StatusServiceUnavailable, slugUnavailable, "the service is temporarily unavailable; retry later")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		s.log.DebugContext(r.Context(), "request canceled by the client", "method", r.Method, "path", r.URL.Path, "err", err)
		p = newProblem(statusClientClosed, slugClientClosed, "the client closed the request before the answer")
	case errors.Is(err, context.Canceled):
		p = newProblem(http.StatusServiceUnavailable, slugUnavailable, "the request was canceled")
	case errors.Is(err, domain.ErrUnauthenticated):
		p = newProblem(http.StatusUnauthorized, slugUnauthenticated, err.Error())
	case errors.Is(err, domain.ErrForbidden):
		p = newProblem(http.StatusForbidden, slugForbidden, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		p = newProblem(http.StatusNotFound, slugNotFound, "the resource does not exist, or this credential may not see it")
	case errors.As(err, &te):
		p = newProblem(http.StatusConflict, slugInvalidTransition, te.Error())
		p.Errors = []fieldProblem{{Field: "status", Code: domain.CodeConflict, Message: te.Error()}}
	case errors.Is(err, domain.ErrInvalidTransition):
		p = newProblem(http.StatusConflict, slugInvalidTransition, "invalid status transition")
	case errors.Is(err, domain.ErrStatusConflict):
		p = newProblem(http.StatusConflict, slugStatusConflict, "the status was changed by another request; read the event and retry")
	case errors.Is(err, domain.ErrIDConflict):
		p = newProblem(http.StatusConflict, slugIDConflict, "an event with this id (or Idempotency-Key) was already recorded with other content")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p = newProblem(http.StatusInternalServerError, slugInternal, "an internal error occurred; it has been logged")
	}
	var b *blamed
	if len(p.Errors) == 0 && errors.As(err, &b) {
		p.Errors = []fieldProblem{{Field: b.field, Code: domain.CodeConflict, Message: p.Detail}}
	}
	return p
}

// fail answers the request with the problem err maps to.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := s.problemFor(r, err)
	s.writeProblem(w, r, p, p.Status)
}

// writeProblem writes a problem document (v is a problem, or a struct
// embedding one) with the headers its status calls for.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, v any, status int) {
	h := w.Header()
	switch status {
	case http.StatusUnauthorized:
		// Two challenges (RFC 9110, section 11.6.1): Token for an API
		// token, Bearer for a JWT (or, accepted too, an API token).
		h.Set("WWW-Authenticate", `Token realm="activityd", Bearer realm="activityd"`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	case http.StatusUnsupportedMediaType:
		switch r.Method {
		case http.MethodPost:
			h.Set("Accept-Post", "application/json")
		case http.MethodPatch:
			h.Set("Accept-Patch", "application/json, application/merge-patch+json")
		}
	}
	s.writeBody(w, r, status, "application/problem+json", v)
}

// writeJSON writes v as an application/json response.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	s.writeBody(w, r, status, "application/json", v)
}

// internalProblem is written when a response cannot even be encoded.
var internalProblem = func() []byte {
	b, _ := encode(newProblem(http.StatusInternalServerError, slugInternal, "an internal error occurred; it has been logged"))
	return b
}()

// encode renders v as JSON followed by a newline. It does not escape <, >
// and & (every response is JSON with nosniff, never HTML), so a detail
// reads "DONE -> PENDING" on the wire too.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) {
	b, err := encode(v)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encode response", "method", r.Method, "path", r.URL.Path, "err", err)
		b, status, contentType = internalProblem, http.StatusInternalServerError, "application/problem+json"
	}
	writeRaw(w, status, contentType, b)
}
