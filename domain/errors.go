package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors returned by the core. Adapters at the edge map them to
// protocol status codes; nothing inside the hexagon knows about HTTP.
var (
	// ErrNotFound: the addressed event (or token) does not exist, or the
	// principal may not know that it exists.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: client input broke a rule; the error is a *ValidationError.
	ErrInvalid = errors.New("invalid input")
	// ErrInvalidTransition: the workflow forbids the requested status change.
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrStatusConflict: the status changed between read and write; another
	// request won the race.
	ErrStatusConflict = errors.New("status changed concurrently")
	// ErrConflict: a record (a webhook subscription) changed since it was
	// read; read it again and retry.
	ErrConflict = errors.New("changed concurrently")
	// ErrIDConflict: an event with this id (or idempotency key) was already
	// recorded with other content.
	ErrIDConflict = errors.New("event id already used with other content")
	// ErrUnauthenticated: no credentials, or credentials that are not valid.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: valid credentials that do not allow the operation.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: a backing service (storage) cannot be reached now;
	// the client may retry later.
	ErrUnavailable = errors.New("service unavailable")
)

// Code says which rule a field broke, so that clients and surfaces can act
// on it without reading the message, which is for people and may change.
type Code string

// The rules a field can break.
const (
	CodeRequired      Code = "required"       // absent, null or empty
	CodeMalformed     Code = "malformed"      // not in the expected syntax: a UUID, an RFC 3339 time, an action name, a cursor, JSON
	CodeOutOfRange    Code = "out_of_range"   // a number or a time outside what is allowed
	CodeTooLong       Code = "too_long"       // larger than allowed: metadata, a header
	CodeTooMany       Code = "too_many"       // more items than allowed: events in a batch, actions in a filter
	CodeUnknownAction Code = "unknown_action" // a well-formed action outside the vocabulary
	CodeNotOneOf      Code = "not_one_of"     // not one of a fixed set of values: a status, an order, a time field
	CodeNotObject     Code = "not_object"     // metadata that is not exactly one JSON object
	CodeUnsupported   Code = "unsupported"    // valid JSON no store can hold: a NUL character, a number beyond SQL's numeric
	CodeConflict      Code = "conflict"       // inconsistent with another field: from after to, a cursor of another order
)

// FieldError names one field of client input, the rule it broke and why.
type FieldError struct {
	Field   string
	Code    Code
	Message string
}

// ValidationError lists every field that broke a rule. It matches ErrInvalid
// with errors.Is.
type ValidationError struct {
	Fields []FieldError
}

// Invalid returns a *ValidationError for one field.
func Invalid(field string, code Code, format string, args ...any) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// Add appends a field error.
func (e *ValidationError) Add(field string, code Code, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// Merge appends the fields of err when it is a validation error; any other
// error is kept as one malformed field named after nothing, so that no
// problem is dropped.
func (e *ValidationError) Merge(err error) {
	if err == nil {
		return
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		e.Fields = append(e.Fields, ve.Fields...)
		return
	}
	e.Fields = append(e.Fields, FieldError{Field: "(input)", Code: CodeMalformed, Message: err.Error()})
}

// Prefix returns a copy whose field names are prefixed, e.g. "events[3].".
func (e *ValidationError) Prefix(p string) *ValidationError {
	out := &ValidationError{Fields: make([]FieldError, len(e.Fields))}
	for i, f := range e.Fields {
		f.Field = p + f.Field
		out.Fields[i] = f
	}
	return out
}

// OrNil returns nil when no field was rejected, so a validator can build up
// errors and return them in one line.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is reports ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// TransitionError is a forbidden status change; it matches
// ErrInvalidTransition.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("invalid status transition: %s -> %s", e.From, e.To)
}

// Is reports ErrInvalidTransition.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }
