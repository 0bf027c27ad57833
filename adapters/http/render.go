package httpapi

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// The /v1 event encoder. Listing is the hottest path, and reflection-based
// encoding of a page (plus json.RawMessage's re-validation of each
// metadata object) cost more than reading the page from PostgreSQL. These
// functions append the same bytes encodeJSON would write for eventJSON and
// pageJSON (render_test.go holds them to that) straight into one buffer
// sized up front. Metadata is appended as stored: every store keeps the
// canonical compact form the domain produced when it was written (an
// empty object when none was sent: domain.EmptyMetadata), so a renderer
// adds no default of its own.

// eventSize estimates the encoded size of e, for sizing buffers.
func eventSize(e domain.Event) int { return 200 + len(e.Action) + len(e.Metadata) }

// appendEvent appends e as a /v1 event object.
func appendEvent(b []byte, e domain.Event) []byte {
	b = append(b, `{"id":"`...)
	b = e.ID.AppendText(b)
	b = append(b, `","user_id":`...)
	b = strconv.AppendInt(b, e.UserID, 10)
	b = append(b, `,"action":`...)
	b = appendString(b, string(e.Action))
	b = append(b, `,"status":`...)
	b = appendString(b, string(e.Status))
	b = append(b, `,"occurred_at":"`...)
	b = appendTime(b, e.OccurredAt)
	b = append(b, `","recorded_at":"`...)
	b = appendTime(b, e.RecordedAt)
	b = append(b, `","updated_at":"`...)
	b = appendTime(b, e.UpdatedAt)
	b = append(b, `","metadata":`...)
	if len(e.Metadata) == 0 {
		b = append(b, "null"...) // as encoding/json renders a nil json.RawMessage
	} else {
		b = append(b, e.Metadata...)
	}
	if l, ok := e.ID.Legacy(); ok {
		b = append(b, `,"legacy":{"system":"`...)
		b = append(b, l.System.String()...)
		b = append(b, `","id":`...)
		b = strconv.AppendInt(b, l.N, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendPage appends p as a /v1 listing, {"items":[...],"next_cursor":...},
// and the newline encodeJSON ends every body with.
func appendPage(b []byte, p domain.Page) []byte {
	b = append(b, `{"items":[`...)
	for i, e := range p.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, e)
	}
	b = append(b, `],"next_cursor":`...)
	if p.Next != nil {
		b = appendString(b, p.Next.Encode())
	} else {
		b = append(b, "null"...)
	}
	return append(b, "}\n"...)
}

// renderPageBytes is the /v1 listing's body.
func renderPageBytes(p domain.Page) ([]byte, error) {
	n := 48
	for _, e := range p.Events {
		n += eventSize(e)
	}
	return appendPage(make([]byte, 0, n), p), nil
}

// renderEventBytes is one /v1 event as a response body.
func renderEventBytes(e domain.Event) []byte {
	return append(appendEvent(make([]byte, 0, eventSize(e)+1), e), '\n')
}

// appendTime appends t as domain.FormatTime renders it.
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// appendString appends s as a JSON string the way encoding/json does with
// HTML escaping off: quotes, backslashes and control characters escaped,
// invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// A view is how one surface renders a page of a listing (P is
// domain.Page or domain.CountPage), and the name the use cases cache that
// rendering under. The rendering stays here: a use case hands back either
// the bytes it kept for the view or the page, and the page's rendering is
// handed back to it (app.Listing.Keep).
type view[P any] struct {
	name   string
	render func(P) ([]byte, error)
}

// jsonView is a view whose bytes are the JSON encoding of render's result,
// exactly as writeJSON would have written it.
func jsonView[P, T any](name string, render func(P) T) view[P] {
	return view[P]{name: name, render: func(p P) ([]byte, error) { return encode(render(p)) }}
}

// writeListing answers with a listing as v renders it, saying in X-Cache
// how it was served (HIT, MISS or BYPASS).
func writeListing[P any](w http.ResponseWriter, r *http.Request, l app.Listing[P], v view[P], fail failFunc) {
	b := l.Body
	if b == nil {
		var err error
		if b, err = v.render(l.Page); err != nil {
			fail(w, r, err)
			return
		}
		l.Keep(b)
	}
	w.Header().Set("X-Cache", string(l.Cache))
	writeRaw(w, http.StatusOK, "application/json", b)
}

// writeRaw writes b as the response body, with its length.
func writeRaw(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
