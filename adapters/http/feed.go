package httpapi

import (
	"bufio"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// GET /v1/changes: the change feed, as pages of JSON (with wait=, a long
// poll) or, with Accept: text/event-stream, as Server-Sent Events that
// resume from Last-Event-ID.

var feedListing = newListing([]string{"after", "user_id", "limit", "wait"})

// Event streams: a comment line when nothing happened for sseHeartbeat
// (so that proxies and clients see the connection alive), and the write
// deadline renewed after every write.
const (
	sseHeartbeat     = 15 * time.Second
	sseWriteTimeout  = time.Minute
	eventStreamType  = "text/event-stream"
	longPollTimeOver = 15 * time.Second // beyond wait, for writing the answer
)

// changes is GET /v1/changes.
func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	vals, err := listingParams(r, feedListing)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := app.FeedQuery{After: vals.Get("after"), UserID: vals.Get("user_id"), Limit: vals.Get("limit"), Wait: vals.Get("wait")}
	stream := wantsEventStream(r.Header.Get("Accept"))
	if id := r.Header.Get("Last-Event-ID"); stream && id != "" {
		q.After = id // a reconnecting EventSource: resume after what it saw
	}
	read, err := s.feed.Parse(principalFrom(r.Context()), q)
	if err == nil {
		err = s.feed.Check(r.Context(), read)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	select {
	case s.followers <- struct{}{}:
		defer func() { <-s.followers }()
	default:
		p := newProblem(http.StatusServiceUnavailable, slugOverloaded,
			"the server is at its limit of "+strconv.Itoa(cap(s.followers))+" feed readers; retry later")
		w.Header().Set("Retry-After", "1")
		s.writeProblem(w, r, p, p.Status)
		return
	}
	rc := http.NewResponseController(w)
	if stream {
		s.streamChanges(w, r, rc, read)
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(read.Wait + longPollTimeOver))
	page, err := s.feed.Read(r.Context(), read)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b := make([]byte, 0, 64+len(page.Changes)*400)
	b = append(b, `{"items":[`...)
	for i, c := range page.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendChange(b, c)
	}
	b = append(b, `],"next_position":`...)
	b = strconv.AppendInt(b, page.Next, 10)
	b = append(b, "}\n"...)
	w.Header().Set("Cache-Control", "no-store")
	writeRaw(w, http.StatusOK, "application/json", b)
}

// streamChanges sends the feed from read.After as Server-Sent Events until
// the client goes away: one event per change (id: its position, data: the
// change as in a page's items), a comment line every sseHeartbeat when
// nothing happened. A store failure ends the stream; the client
// reconnects with Last-Event-ID and loses nothing.
func (s *Server) streamChanges(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, read app.FeedRead) {
	h := w.Header()
	h.Set("Content-Type", eventStreamType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 16<<10)
	send := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		return nil
	}
	_, _ = bw.WriteString("retry: 1000\n\n") // reconnect after a second
	if send() != nil {
		return
	}
	read.Wait = sseHeartbeat
	if read.Limit == app.FeedDefaultLimit {
		read.Limit = app.FeedMaxLimit // a stream takes what there is
	}
	var b []byte
	for {
		page, err := s.feed.Read(r.Context(), read)
		if err != nil {
			if r.Context().Err() == nil {
				s.log.WarnContext(r.Context(), "change feed stream ended by a store error; the client resumes", "after", read.After, "err", err)
			}
			return
		}
		if len(page.Changes) == 0 {
			_, _ = bw.WriteString(": keep-alive\n\n")
		}
		for _, c := range page.Changes {
			b = append(b[:0], "id: "...)
			b = strconv.AppendInt(b, c.Position, 10)
			b = append(b, "\ndata: "...)
			b = appendChange(b, c) // JSON: no raw newline inside
			b = append(b, "\n\n"...)
			_, _ = bw.Write(b)
		}
		if send() != nil {
			return // the client went away
		}
		read.After = page.Next
	}
}

// appendChange renders one change: its position, kind, time and the
// event as /v1 renders it, as the change left it.
func appendChange(b []byte, c domain.Change) []byte {
	b = append(b, `{"position":`...)
	b = strconv.AppendInt(b, c.Position, 10)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(c.Kind))
	b = append(b, `,"at":"`...)
	b = appendTime(b, c.At)
	if c.Erasure != nil {
		b = append(b, `","event":null,"erasure":`...)
		b = appendErasure(b, *c.Erasure)
		return append(b, '}')
	}
	b = append(b, `","event":`...)
	b = appendEvent(b, c.Event)
	return append(b, '}')
}

// wantsEventStream reports whether Accept asks for Server-Sent Events.
func wantsEventStream(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == eventStreamType && !refused(params["q"]) {
			return true
		}
	}
	return false
}
