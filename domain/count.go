package domain

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// UserCount is how many events one user recorded in a time window, in total
// and per action.
type UserCount struct {
	UserID   int64
	Total    int64
	ByAction map[Action]int64
}

// WindowCount is a UserCount for the window [Start, End).
type WindowCount struct {
	UserCount
	Start, End time.Time
}

// CountFilter selects computed counts: one item per (window, user) that
// had events in the window. Users without events in a window have no item
// (absence means zero). Zero fields do not filter.
type CountFilter struct {
	UserID   int64     // 0: every user (admin only)
	From, To time.Time // on the window's start, half-open
	Order    Order     // by (window start, user id); stores treat the zero value as Asc
	Limit    int
	After    *CountCursor // continue after this position
}

// CountPage is one page of computed counts; Next is nil on the last page.
type CountPage struct {
	Counts []WindowCount
	Next   *CountCursor
}

// CountCursor is a keyset position in a listing of counts: the (window
// start, user id) of the last item of a page, and the order it was made for.
type CountCursor struct {
	WindowStart time.Time
	UserID      int64
	Order       Order
}

// PageSize is how many counts a page of f holds: Limit, or DefaultLimit
// when f sets none.
func (f CountFilter) PageSize() int { return pageSize(f.Limit) }

// Page cuts counts, read in f's order as up to PageSize()+1, to a page, as
// Filter.Page does for events.
func (f CountFilter) Page(counts []WindowCount) CountPage {
	counts, next := cutPage(counts, f.PageSize(), f.CursorAfter)
	return CountPage{Counts: counts, Next: next}
}

// CursorAfter returns the cursor positioned on c for filter f.
func (f CountFilter) CursorAfter(c WindowCount) *CountCursor {
	return &CountCursor{WindowStart: c.Start, UserID: c.UserID, Order: f.Order}
}

// countCursorTag tells a count cursor from an event cursor (whose first
// byte is its version, 1).
const countCursorTag = 'c'

// Encode renders the cursor as an opaque URL-safe string.
func (c CountCursor) Encode() string {
	b := make([]byte, 0, 1+1+8+8)
	b = append(b, countCursorTag, boolByte(c.Order == Asc))
	b = binary.BigEndian.AppendUint64(b, uint64(c.WindowStart.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.UserID))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCountCursor parses a cursor made by CountCursor.Encode.
func DecodeCountCursor(s string) (CountCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 18 || b[0] != countCursorTag || b[1] > 1 {
		return CountCursor{}, errBadCursor
	}
	c := CountCursor{Order: Desc}
	if b[1] == 1 {
		c.Order = Asc
	}
	c.WindowStart = time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC()
	c.UserID = int64(binary.BigEndian.Uint64(b[10:18]))
	if c.UserID < 0 {
		return CountCursor{}, errBadCursor
	}
	return c, nil
}

// CountQuery is a listing of counts as a client states it, before
// validation. Zero values mean "not sent".
type CountQuery struct {
	UserID   string // decimal, as sent
	From, To string // RFC 3339, on the window's start
	Order    string
	Limit    string
	Cursor   string
}

// ParseCountQuery validates q and returns the filter it describes (newest
// window first unless order=asc), reporting every bad parameter by name.
func ParseCountQuery(q CountQuery) (CountFilter, error) {
	ve := &ValidationError{}
	f := CountFilter{UserID: ve.userID(q.UserID)}
	f.From, f.To = ve.timeRange(q.From, q.To)
	f.Order = ve.order(q.Order)
	f.Limit = ve.limit(q.Limit)
	if q.Cursor != "" {
		c, err := DecodeCountCursor(q.Cursor)
		switch {
		case err != nil:
			ve.Add("cursor", CodeMalformed, "is not a cursor this service issued for activity counts")
		case c.Order != f.Order:
			ve.Add("cursor", CodeConflict, "was issued for another order")
		default:
			f.After = &c
		}
	}
	if err := ve.OrNil(); err != nil {
		return CountFilter{}, err
	}
	return f, nil
}
