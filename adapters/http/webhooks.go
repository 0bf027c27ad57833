package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// /v1/webhooks: admins subscribe endpoints to the change feed (app.Webhooks).

// decodeWebhook decodes a subscription: {"url","actions","user_ids",
// "kinds","from","paused"}, every member optional here (Create requires
// url).
func decodeWebhook(raw json.RawMessage, fe *fieldErrors) app.WebhookInput {
	var in app.WebhookInput
	ms, ok := members(raw, "", fe)
	if !ok {
		return in
	}
	list := func(m member, into any, what string) bool {
		if jsonKind(m.value) != "an array" || json.Unmarshal(m.value, into) != nil {
			fe.add(m.name, codeWrongType, "must be an array of %s", what)
			return false
		}
		return true
	}
	for _, m := range ms {
		switch m.name {
		case "url":
			if s, ok := stringMember(m, "", fe); ok {
				in.URL = &s
			}
		case "actions":
			var v []string
			if list(m, &v, "action names") {
				in.Actions = &v
			}
		case "user_ids":
			var v []int64
			if list(m, &v, "user ids (positive integers)") {
				in.Users = &v
			}
		case "kinds":
			var v []string
			if list(m, &v, "change kinds") {
				in.Kinds = &v
			}
		case "from":
			switch jsonKind(m.value) {
			case "a number":
				in.From = string(bytes.TrimSpace(m.value))
			case "a string":
				in.From, _ = stringMember(m, "", fe)
			default:
				fe.add("from", codeWrongType, `must be "now" or a position`)
			}
		case "paused":
			var b bool
			if jsonKind(m.value) != "a boolean" || json.Unmarshal(m.value, &b) != nil {
				fe.add("paused", codeWrongType, "must be true or false")
				continue
			}
			in.Paused = &b
		default:
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (known: url, actions, user_ids, kinds, from, paused)")
		}
	}
	return in
}

// decodeReplay decodes {"from": position}.
func decodeReplay(raw json.RawMessage, fe *fieldErrors) int64 {
	ms, ok := members(raw, "", fe)
	if !ok {
		return 0
	}
	from := int64(-1)
	for _, m := range ms {
		switch m.name {
		case "from":
			n, err := strconv.ParseInt(string(bytes.TrimSpace(m.value)), 10, 64)
			if jsonKind(m.value) != "a number" || err != nil || n < 0 {
				fe.add("from", codeWrongType, "must be a position: an integer >= 0")
				continue
			}
			from = n
		default:
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (known: from)")
		}
	}
	if from < 0 && fe.total == 0 {
		fe.add("from", domain.CodeRequired, "is required: the position to deliver after (0: the whole feed)")
	}
	return from
}

func appendStrings[T ~string](b []byte, vs []T) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(v))
	}
	return append(b, ']')
}

func appendOptTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = appendTime(b, t)
	return append(b, '"')
}

// appendSubscription renders s without its secrets' values (shown once,
// when made).
func appendSubscription(b []byte, s domain.Subscription) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, s.ID)
	b = append(b, `,"url":`...)
	b = appendString(b, s.URL)
	b = append(b, `,"actions":`...)
	b = appendStrings(b, s.Filter.Actions)
	b = append(b, `,"user_ids":[`...)
	for i, u := range s.Filter.Users {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, u, 10)
	}
	b = append(b, `],"kinds":`...)
	b = appendStrings(b, s.Filter.Kinds)
	b = append(b, `,"created_at":`...)
	b = appendOptTime(b, s.CreatedAt)
	b = append(b, `,"created_by":`...)
	b = appendString(b, s.CreatedBy)
	b = append(b, `,"secrets":[`...)
	for i, sec := range s.Secrets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"created_at":`...)
		b = appendOptTime(b, sec.CreatedAt)
		b = append(b, `,"expires_at":`...)
		b = appendOptTime(b, sec.ExpiresAt)
		b = append(b, '}')
	}
	st := s.State
	b = append(b, `],"position":`...)
	b = strconv.AppendInt(b, st.Position, 10)
	b = append(b, `,"pending_until":`...)
	if st.Pending == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, st.Pending, 10)
	}
	b = append(b, `,"failures":`...)
	b = strconv.AppendInt(b, int64(st.Failures), 10)
	b = append(b, `,"paused":`...)
	b = strconv.AppendBool(b, st.Paused)
	b = append(b, `,"last_error":`...)
	if st.LastError == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, st.LastError)
	}
	b = append(b, `,"next_try":`...)
	b = appendOptTime(b, st.NextTry)
	return append(b, '}')
}

func (s *Server) writeSubscription(w http.ResponseWriter, status int, sub domain.Subscription, secret string) {
	b := appendSubscription(make([]byte, 0, 512), sub)
	if secret != "" {
		b = append(b[:len(b)-1], `,"secret":`...)
		b = appendString(b, secret)
		b = append(b, '}')
	}
	w.Header().Set("Cache-Control", "no-store")
	writeRaw(w, status, "application/json", append(b, '\n'))
}

// answerSubscription serves a request on one subscription ({id}, "" for
// a new one): op acts for the request's principal and returns the
// subscription, with its secret when it made one (shown this once).
func (s *Server) answerSubscription(w http.ResponseWriter, r *http.Request, status int,
	op func(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error)) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	sub, secret, err := op(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/webhooks/"+sub.ID)
	}
	s.writeSubscription(w, status, sub, secret)
}

// withBody decodes the request body with decode before running op.
func withBody[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, decode func(json.RawMessage, *fieldErrors) T,
	op func(ctx context.Context, p domain.Principal, id string, in T) (domain.Subscription, string, error),
) func(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error) {
	return func(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error) {
		in, done, err := decodeBody(s, w, r, what, decode)
		if err != nil {
			return domain.Subscription{}, "", err
		}
		defer done()
		return op(ctx, p, id, in)
	}
}

// noSecret adapts a use case that makes no secret.
func noSecret(sub domain.Subscription, err error) (domain.Subscription, string, error) {
	return sub, "", err
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	s.answerSubscription(w, r, http.StatusCreated, withBody(s, w, r, "webhook", decodeWebhook,
		func(ctx context.Context, p domain.Principal, _ string, in app.WebhookInput) (domain.Subscription, string, error) {
			return s.hooks.Create(ctx, p, in)
		}))
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	s.answerSubscription(w, r, http.StatusOK, func(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error) {
		return noSecret(s.hooks.Get(ctx, p, id))
	})
}

func (s *Server) patchWebhook(w http.ResponseWriter, r *http.Request) {
	s.answerSubscription(w, r, http.StatusOK, withBody(s, w, r, "webhook", decodeWebhook,
		func(ctx context.Context, p domain.Principal, id string, in app.WebhookInput) (domain.Subscription, string, error) {
			return noSecret(s.hooks.Update(ctx, p, id, in))
		}))
}

func (s *Server) rotateWebhook(w http.ResponseWriter, r *http.Request) {
	s.answerSubscription(w, r, http.StatusOK, func(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error) {
		return s.hooks.Rotate(ctx, p, id)
	})
}

func (s *Server) replayWebhook(w http.ResponseWriter, r *http.Request) {
	s.answerSubscription(w, r, http.StatusOK, withBody(s, w, r, "replay", decodeReplay,
		func(ctx context.Context, p domain.Principal, id string, from int64) (domain.Subscription, string, error) {
			return noSecret(s.hooks.Replay(ctx, p, id, from))
		}))
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	subs, err := s.hooks.List(r.Context(), principalFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b := append(make([]byte, 0, 64+512*len(subs)), `{"items":[`...)
	for i, sub := range subs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSubscription(b, sub)
	}
	b = append(b, "]}\n"...)
	writeRaw(w, http.StatusOK, "application/json", b)
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.hooks.Delete(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	vals, err := parseQuery(r, []string{"limit"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit := 100
	if v := vals.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(w, r, domain.Invalid("limit", domain.CodeOutOfRange, "must be an integer from 1 to 1000"))
			return
		}
		limit = n
	}
	ds, err := s.hooks.Deliveries(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b := append(make([]byte, 0, 64+256*len(ds)), `{"items":[`...)
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"message_id":`...)
		b = appendString(b, d.MessageID)
		b = append(b, `,"first_position":`...)
		b = strconv.AppendInt(b, d.First, 10)
		b = append(b, `,"last_position":`...)
		b = strconv.AppendInt(b, d.Last, 10)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(d.Count), 10)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(d.Attempt), 10)
		b = append(b, `,"at":`...)
		b = appendOptTime(b, d.At)
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, float64(d.Duration.Microseconds())/1000, 'f', 3, 64)
		b = append(b, `,"status_code":`...)
		if d.StatusCode == 0 {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendInt(b, int64(d.StatusCode), 10)
		}
		b = append(b, `,"ok":`...)
		b = strconv.AppendBool(b, d.OK())
		b = append(b, `,"error":`...)
		if d.Error == "" {
			b = append(b, "null"...)
		} else {
			b = appendString(b, d.Error)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	writeRaw(w, http.StatusOK, "application/json", b)
}

// AppendChange renders one change as GET /v1/changes does: webhook
// deliveries carry the same items.
func AppendChange(b []byte, c domain.Change) []byte { return appendChange(b, c) }
