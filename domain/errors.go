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

// FieldError names one field of client input and why it was rejected.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every field that broke a rule. It matches ErrInvalid
// with errors.Is.
type ValidationError struct {
	Fields []FieldError
}

// Invalid returns a *ValidationError for one field.
func Invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// Add appends a field error.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Prefix returns a copy whose field names are prefixed, e.g. "events[3].".
func (e *ValidationError) Prefix(p string) *ValidationError {
	out := &ValidationError{Fields: make([]FieldError, len(e.Fields))}
	for i, f := range e.Fields {
		out.Fields[i] = FieldError{Field: p + f.Field, Message: f.Message}
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
