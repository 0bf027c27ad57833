package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// decodeErasure decodes {"from","to"} (both optional).
func decodeErasure(raw json.RawMessage, fe *fieldErrors) app.ErasureQuery {
	var q app.ErasureQuery
	ms, ok := members(raw, "", fe)
	if !ok {
		return q
	}
	for _, m := range ms {
		switch m.name {
		case "from":
			q.From, _ = stringMember(m, "", fe)
		case "to":
			q.To, _ = stringMember(m, "", fe)
		default:
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (known: from, to)")
		}
	}
	return q
}

// eraseUser is POST /v1/users/{user_id}/erasure.
func (s *Server) eraseUser(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	var q app.ErasureQuery
	if r.ContentLength != 0 {
		var done func()
		var err error
		q, done, err = decodeBody(s, w, r, "erasure", decodeErasure)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer done()
	}
	user, err := pathUser(r) // not a positive integer: 404, as on every /v1/users/{user_id} route
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.UserID = user
	e, err := s.events.Erase(r.Context(), principalFrom(r.Context()), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b := appendErasure(make([]byte, 0, 256), e)
	writeRaw(w, http.StatusOK, "application/json", append(b, '\n'))
}

// appendErasure renders an erasure: whose, the range, how many, by whom,
// when.
func appendErasure(b []byte, e domain.Erasure) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, e.UserID, 10)
	b = append(b, `,"from":`...)
	b = appendOptTime(b, e.From)
	b = append(b, `,"to":`...)
	b = appendOptTime(b, e.To)
	b = append(b, `,"erased":`...)
	b = strconv.AppendInt(b, e.Count, 10)
	b = append(b, `,"by":`...)
	b = appendString(b, e.By)
	b = append(b, `,"at":`...)
	b = appendOptTime(b, e.At)
	return append(b, '}')
}
