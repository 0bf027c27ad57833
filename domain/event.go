package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one recorded activity of one user.
type Event struct {
	ID         ID
	UserID     int64
	Action     Action
	Status     Status
	OccurredAt time.Time       // when the user did it (client-supplied, else RecordedAt)
	RecordedAt time.Time       // when the service stored it (server clock)
	UpdatedAt  time.Time       // last status change
	Metadata   json.RawMessage // a compact JSON object, never nil
}

// EmptyMetadata is the metadata of an event recorded without any: an
// empty object. It is the one place that default is spelled.
func EmptyMetadata() json.RawMessage { return json.RawMessage("{}") }

// MetadataOrEmpty returns e's metadata, or EmptyMetadata when it has none
// (an Event built by hand rather than by Validate or a store).
func (e Event) MetadataOrEmpty() json.RawMessage {
	if len(e.Metadata) == 0 {
		return EmptyMetadata()
	}
	return e.Metadata
}

// Precision is the resolution every time is kept at: all stores agree on it
// (PostgreSQL's timestamptz holds microseconds), so an event reads back as
// the same instant whichever adapter stored it.
const Precision = time.Microsecond

// Normalize returns t in UTC at the stored Precision.
func Normalize(t time.Time) time.Time { return t.UTC().Truncate(Precision) }

// Limits bounds what a client may send. The zero value is not useful; use
// DefaultLimits and override.
type Limits struct {
	Actions          Vocabulary
	MaxClockSkew     time.Duration // how far in the future occurred_at may lie
	MaxMetadataBytes int           // size of the metadata object as sent
}

// DefaultLimits are the defaults the README's Configuration table lists
// (ACTIONS, MAX_CLOCK_SKEW, MAX_METADATA_BYTES): the predecessors'
// vocabulary, 5 minutes of clock skew and 16 KiB of metadata.
func DefaultLimits() Limits {
	return Limits{Actions: DefaultVocabulary(), MaxClockSkew: 5 * time.Minute, MaxMetadataBytes: 16 << 10}
}

// NewEvent is what a client asks to record, after decoding but before any
// rule is checked. A zero value is "not sent" unless Sent says otherwise.
type NewEvent struct {
	ID         string          // optional client id (a UUID)
	UserID     int64           // the user whose activity it is; 0: the principal's
	Action     string          // as sent, any case
	OccurredAt string          // RFC 3339, optional
	Metadata   json.RawMessage // optional JSON object
	// IdempotencyKey makes a create without an ID idempotent: the event's
	// id is derived from it and the user (KeyID).
	IdempotencyKey string
	// Legacy, set to ActivityLogger, asks for an activity-logger log number
	// as the id (LegacyID.ID) when neither ID nor IdempotencyKey names one:
	// that surface's clients hold integer ids.
	Legacy LegacySystem
	// Sent marks members the client sent with a non-null value, so that one
	// sent empty ("" for id or occurred_at) or as a number no int64 holds
	// (user_id 1.5, 1e3, 2^63) is rejected instead of read as absent.
	Sent Members
	// Required marks members the client must send (a predecessor's surface
	// required every member); a missing one is CodeRequired.
	Required Members
}

// Members is a set of NewEvent's members.
type Members uint8

// NewEvent's members.
const (
	MemberID Members = 1 << iota
	MemberUserID
	MemberAction
	MemberOccurredAt
	MemberMetadata
)

// Has reports whether every member of m2 is in m.
func (m Members) Has(m2 Members) bool { return m&m2 == m2 }

// Validate checks every rule and returns the event to store, stamped with
// now as its recorded time and a fresh UUIDv7 unless the client sent an id
// (the IdempotencyKey is the use case's to check, after authorisation:
// app.Events.Record). in.UserID must already be resolved (the
// principal's when absent). All violations are reported together.
func (l Limits) Validate(in NewEvent, now time.Time) (Event, error) {
	now = Normalize(now)
	ve := &ValidationError{}
	e := Event{UserID: in.UserID, Status: StatusPending, RecordedAt: now, UpdatedAt: now}
	missing := func(m Members, field string) bool {
		if in.Required.Has(m) && !in.Sent.Has(m) {
			ve.Add(field, CodeRequired, "is required")
			return true
		}
		return false
	}

	if !missing(MemberID, "id") && (in.ID != "" || in.Sent.Has(MemberID)) {
		id, err := ParseID(in.ID)
		switch {
		case err != nil:
			ve.Add("id", CodeMalformed, "must be a UUID, e.g. 0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70")
		case id.IsZero():
			ve.Add("id", CodeOutOfRange, "must not be the nil UUID")
		default:
			e.ID = id
		}
	}
	if !missing(MemberUserID, "user_id") && in.UserID <= 0 {
		ve.Add("user_id", CodeOutOfRange, "must be a positive integer")
	}
	if a, err := l.Actions.ParseAction("action", in.Action); err != nil {
		ve.Merge(err)
	} else {
		e.Action = a
	}
	e.OccurredAt = now
	if !missing(MemberOccurredAt, "occurred_at") && (in.OccurredAt != "" || in.Sent.Has(MemberOccurredAt)) {
		t, err := ParseTime(in.OccurredAt)
		switch {
		case err != nil:
			ve.Add("occurred_at", CodeMalformed, "must be an RFC 3339 time, e.g. 2025-10-10T18:30:00Z")
		case t.After(now.Add(l.MaxClockSkew)):
			ve.Add("occurred_at", CodeOutOfRange, "must not be more than %s in the future", l.MaxClockSkew)
		case t.Year() < 1:
			ve.Add("occurred_at", CodeOutOfRange, "must be after year 0")
		default:
			e.OccurredAt = t
		}
	}
	if !missing(MemberMetadata, "metadata") {
		md, err := l.metadata(in.Metadata)
		ve.Merge(err)
		e.Metadata = md
	}
	if err := ve.OrNil(); err != nil {
		return Event{}, err
	}
	if e.ID.IsZero() {
		e.ID = NewID(now)
	}
	return e, nil
}

// metadata checks the object rule and size limit and returns the compact,
// key-sorted canonical form, so equal objects compare equal byte for byte.
func (l Limits) metadata(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return EmptyMetadata(), nil
	}
	if l.MaxMetadataBytes > 0 && len(raw) > l.MaxMetadataBytes {
		return nil, Invalid("metadata", CodeTooLong, "must be at most %d bytes (got %d)", l.MaxMetadataBytes, len(raw))
	}
	canon, err := CanonicalObject(raw)
	if err != nil {
		code := CodeMalformed
		var me metadataError
		if errors.As(err, &me) {
			code = me.code
		}
		return nil, Invalid("metadata", code, "%s", err.Error())
	}
	return canon, nil
}

// metadataError is why metadata was refused, and the rule it broke.
type metadataError struct {
	code Code
	msg  string
}

func (e metadataError) Error() string { return e.msg }

// CanonicalObject re-encodes a JSON object compactly with sorted keys.
// It rejects anything but an object, the NUL character anywhere in it and
// numbers beyond what a SQL numeric holds (no SQL store can hold them in a
// JSON column).
func CanonicalObject(raw []byte) (json.RawMessage, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, metadataError{CodeNotObject, "must be a JSON object"}
	}
	if hasNUL(v) {
		return nil, metadataError{CodeUnsupported, "must not contain the NUL character (\\u0000)"}
	}
	if !storableNumbers(v) {
		return nil, metadataError{CodeUnsupported, "must not contain a number with more than 131072 digits before the decimal point or 16383 after it"}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, metadataError{CodeMalformed, "must be valid JSON"}
	}
	return out, nil
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, metadataError{CodeMalformed, "must be valid JSON"}
	}
	// d.More is not enough here: it reports false before a stray ']' or
	// '}', so `{}]` would pass. Anything but the end of input is trailing
	// data.
	if _, err := d.Token(); err != io.EOF {
		return nil, metadataError{CodeNotObject, "must be a single JSON object"}
	}
	return v, nil
}

func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.IndexByte(x, 0) >= 0
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// SameContent reports whether a retry describes the event already stored:
// same user, action and metadata and, when the retry names one, the same
// occurred_at. It decides between "return the stored event" and "conflict"
// for idempotent creates.
func SameContent(stored, retry Event, retrySentOccurredAt bool) bool {
	if stored.UserID != retry.UserID || stored.Action != retry.Action {
		return false
	}
	if retrySentOccurredAt && !stored.OccurredAt.Equal(retry.OccurredAt) {
		return false
	}
	return sameJSON(stored.Metadata, retry.Metadata)
}

// sameJSON reports whether two JSON documents hold the same value. Numbers
// compare by value, not spelling: a store may give back 1e2 as 100, 1E-7 as
// 0.0000001 or -0 as 0 (PostgreSQL's jsonb does), and a retry must still
// match what it stored.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, err1 := decodeJSON(a)
	vb, err2 := decodeJSON(b)
	return err1 == nil && err2 == nil && equalJSON(va, vb)
}

func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalJSON(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		dx, ok1 := parseDecimal(string(x))
		dy, ok2 := parseDecimal(string(y))
		return ok1 && ok2 && dx.value == dy.value
	default: // string, bool, nil
		return a == b
	}
}

// decimal is a JSON number literal taken apart without arithmetic, so that
// no exponent can make it allocate.
type decimal struct {
	// value is the number as 0.digits × 10^exp with no leading or trailing
	// zero digit; the zero value is the number 0 (of either sign).
	value struct {
		neg    bool
		digits string
		exp    int64
	}
	scale int64 // digits after the decimal point as written (PostgreSQL's dscale), ≥ 0
}

// parseDecimal takes apart a number in JSON's grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, as the decoder checked it.
// It fails only for an exponent beyond ±2^31.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var e int64
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		n, err := strconv.ParseInt(s[i+1:], 10, 32)
		if err != nil {
			return d, false
		}
		e, s = n, s[:i]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	d.scale = max(0, int64(len(frac))-e)
	digits := intPart + frac
	exp := int64(len(intPart)) + e
	lead := len(digits) - len(strings.TrimLeft(digits, "0"))
	digits = strings.TrimRight(digits[lead:], "0")
	if digits == "" {
		return d, true // zero
	}
	d.value.neg, d.value.digits, d.value.exp = neg, digits, exp-int64(lead)
	return d, true
}

// PostgreSQL's numeric, which its jsonb stores numbers as, holds at most
// 131072 digits before the decimal point and 16383 after, and no exponent
// of 2^30 - 1 or beyond.
const (
	maxIntDigits   = 131072
	maxScale       = 16383
	maxAbsExponent = 1<<30 - 1
)

// storableNumbers reports whether every number in v fits a SQL numeric.
func storableNumbers(v any) bool {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			if e, err := strconv.ParseInt(s[i+1:], 10, 64); err != nil || e >= maxAbsExponent || e <= -maxAbsExponent {
				return false
			}
		}
		d, ok := parseDecimal(s)
		return ok && d.scale <= maxScale && d.value.exp <= maxIntDigits
	case []any:
		for _, e := range x {
			if !storableNumbers(e) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !storableNumbers(e) {
				return false
			}
		}
	}
	return true
}

// ParseTime parses an RFC 3339 time (fractional seconds allowed) and
// returns it normalised to UTC at the stored Precision.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return Normalize(t), nil
}

// FormatTime renders t as RFC 3339 in UTC with a Z, keeping every
// significant fractional digit.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
