package domain

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"time"
)

// TimeField selects which of an event's times a filter and its order use.
type TimeField string

// The two times an event can be filtered and ordered on.
const (
	ByRecordedAt TimeField = "recorded_at"
	ByOccurredAt TimeField = "occurred_at"
)

// Order of a listing.
type Order string

// Newest first (the default) or oldest first.
const (
	Desc Order = "desc"
	Asc  Order = "asc"
)

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Filter selects events. Zero fields do not filter. The time range is
// half-open: From inclusive, To exclusive.
type Filter struct {
	UserID    int64 // 0: every user (admin only)
	Actions   []Action
	Status    Status
	From, To  time.Time
	TimeField TimeField
	Order     Order // Desc or Asc; stores treat the zero value as Asc
	Limit     int
	After     *Cursor // continue after this position
	// Offset skips events before the first returned; only the predecessor
	// surfaces page this way, and it cannot be combined with After.
	Offset int
}

// TimeOf returns the time of e that f orders and filters on.
func (f Filter) TimeOf(e Event) time.Time {
	if f.TimeField == ByOccurredAt {
		return e.OccurredAt
	}
	return e.RecordedAt
}

// Page is one page of a listing; Next is nil on the last page.
type Page struct {
	Events []Event
	Next   *Cursor
}

// Cursor is a keyset position: the sort key of the last event of a page.
// It also carries the order and time field it was made for, so it cannot be
// replayed against another ordering.
type Cursor struct {
	Time      time.Time
	ID        ID
	TimeField TimeField
	Order     Order
}

// CursorAfter returns the cursor positioned on e for filter f.
func (f Filter) CursorAfter(e Event) *Cursor {
	return &Cursor{Time: f.TimeOf(e), ID: e.ID, TimeField: f.TimeField, Order: f.Order}
}

// PageSize is how many events a page of f holds: Limit, or DefaultLimit
// when f sets none.
func (f Filter) PageSize() int { return pageSize(f.Limit) }

// Page cuts events, read in f's order as up to PageSize()+1 (one more than
// a page, to learn whether another follows), to a page whose Next is the
// cursor after its last event when one did. Every store pages this way.
func (f Filter) Page(events []Event) Page {
	events, next := cutPage(events, f.PageSize(), f.CursorAfter)
	return Page{Events: events, Next: next}
}

func pageSize(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return limit
}

// cutPage keeps the first size rows and, when there were more, returns
// after's cursor on the last one kept.
func cutPage[T, C any](rows []T, size int, after func(T) *C) ([]T, *C) {
	if len(rows) <= size {
		return rows, nil
	}
	rows = rows[:size]
	return rows, after(rows[size-1])
}

const cursorVersion = 1

// Encode renders the cursor as an opaque URL-safe string.
func (c Cursor) Encode() string {
	b := make([]byte, 0, 1+1+1+8+16)
	b = append(b, cursorVersion)
	b = append(b, boolByte(c.TimeField == ByOccurredAt), boolByte(c.Order == Asc))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMicro()))
	b = append(b, c.ID[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

var errBadCursor = errors.New("bad cursor")

// DecodeCursor parses a cursor made by Encode.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 27 || b[0] != cursorVersion || b[1] > 1 || b[2] > 1 {
		return Cursor{}, errBadCursor
	}
	c := Cursor{TimeField: ByRecordedAt, Order: Desc}
	if b[1] == 1 {
		c.TimeField = ByOccurredAt
	}
	if b[2] == 1 {
		c.Order = Asc
	}
	c.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(b[3:11]))).UTC()
	copy(c.ID[:], b[11:])
	return c, nil
}

// Query is a listing request as a client states it, before validation.
// Zero values mean "not sent". The predecessors' surfaces state their
// differences as options: Offset paging and an inclusive To.
type Query struct {
	UserID    string // decimal, as sent
	Actions   []string
	Status    string
	From, To  string // RFC 3339
	TimeField string
	Order     string
	Limit     string
	Cursor    string
	// Offset skips that many events before the page (decimal, as sent);
	// it cannot be combined with Cursor.
	Offset string
	// ToInclusive makes To inclusive: the events at To are in the range.
	ToInclusive bool
}

// MaxActionFilters bounds how many actions one listing may name.
const MaxActionFilters = 100

// MaxOffset bounds offset paging (it keeps Limit+Offset within 32 bits).
const MaxOffset = 1_000_000_000

// Filter validates q and returns the filter it describes, reporting every
// bad parameter by name.
func (l Limits) Filter(q Query) (Filter, error) {
	ve := &ValidationError{}
	f := Filter{TimeField: ByRecordedAt}
	f.UserID = ve.userID(q.UserID)
	if len(q.Actions) > MaxActionFilters {
		ve.Add("action", CodeTooMany, "must name at most %d actions", MaxActionFilters)
		q.Actions = nil
	}
	seen := map[Action]bool{}
	for _, s := range q.Actions {
		// A filter may name actions that are well-formed but no longer in the
		// vocabulary: old events keep their action.
		a, err := AnyAction().ParseAction("action", s)
		if err != nil {
			ve.Merge(err)
			continue
		}
		if !seen[a] {
			seen[a] = true
			f.Actions = append(f.Actions, a)
		}
	}
	if q.Status != "" {
		st, err := ParseStatus("status", q.Status)
		ve.Merge(err)
		f.Status = st
	}
	f.From, f.To = ve.timeRange(q.From, q.To)
	switch TimeField(q.TimeField) {
	case "", ByRecordedAt:
	case ByOccurredAt:
		f.TimeField = ByOccurredAt
	default:
		ve.Add("time_field", CodeNotOneOf, "must be recorded_at or occurred_at")
	}
	f.Order = ve.order(q.Order)
	f.Limit = ve.limit(q.Limit)
	if q.Cursor != "" {
		c, err := DecodeCursor(q.Cursor)
		switch {
		case err != nil:
			ve.Add("cursor", CodeMalformed, "is not a cursor this service issued")
		case c.TimeField != f.TimeField || c.Order != f.Order:
			ve.Add("cursor", CodeConflict, "was issued for another order or time_field")
		default:
			f.After = &c
		}
	}
	if q.Offset != "" {
		n, ok := parseSmallInt(q.Offset)
		switch {
		case !ok || n < 0 || n > MaxOffset:
			ve.Add("offset", CodeOutOfRange, "must be an integer from 0 to %d", MaxOffset)
		case q.Cursor != "":
			ve.Add("offset", CodeConflict, "cannot be combined with cursor")
		default:
			f.Offset = n
		}
	}
	if err := ve.OrNil(); err != nil {
		return Filter{}, err
	}
	if q.ToInclusive && !f.To.IsZero() {
		// Times are kept at Precision, so "at or before to" is "before to
		// + one unit".
		f.To = f.To.Add(Precision)
	}
	return f, nil
}

// parseSmallInt parses a decimal integer of at most 10 digits, with an
// optional sign.
func parseSmallInt(s string) (int, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// The parameter rules every listing shares (events and activity counts),
// each adding its complaint to ve.

// userID parses a user id sent as a decimal ("" is 0: not sent).
func (ve *ValidationError) userID(s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		ve.Add("user_id", CodeOutOfRange, "must be a positive integer")
		return 0
	}
	return n
}

// ParseUserID parses a user id in canonical form (decimal, no sign or
// leading zero), as a path names a user; ok is false for anything else.
func ParseUserID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == s
}

// timeRange parses from and to (RFC 3339, optional) and checks their order.
func (ve *ValidationError) timeRange(from, to string) (f, t time.Time) {
	parse := func(name, s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		v, err := ParseTime(s)
		if err != nil {
			ve.Add(name, CodeMalformed, "must be an RFC 3339 time (a '+' offset must be URL-encoded as %%2B)")
		}
		return v
	}
	f, t = parse("from", from), parse("to", to)
	if !f.IsZero() && !t.IsZero() && f.After(t) {
		ve.Add("from", CodeConflict, "must not be after to")
	}
	return f, t
}

// order parses desc (the default) or asc.
func (ve *ValidationError) order(s string) Order {
	switch Order(s) {
	case "", Desc:
	case Asc:
		return Asc
	default:
		ve.Add("order", CodeNotOneOf, "must be desc or asc")
	}
	return Desc
}

// limit parses a page size from 1 to MaxLimit; DefaultLimit when absent.
func (ve *ValidationError) limit(s string) int {
	if s == "" {
		return DefaultLimit
	}
	n, ok := parseSmallInt(s)
	if !ok || n < 1 || n > MaxLimit {
		ve.Add("limit", CodeOutOfRange, "must be an integer from 1 to %d", MaxLimit)
	}
	return n
}
