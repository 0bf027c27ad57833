package httpapi

import (
	"net/http"
	"net/url"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// countJSON is one (user, window) of GET /v1/activity-counts.
type countJSON struct {
	UserID      int64            `json:"user_id"`
	WindowStart string           `json:"window_start"`
	WindowEnd   string           `json:"window_end"`
	Total       int64            `json:"total"`
	ByAction    map[string]int64 `json:"by_action"`
	// Provisional marks the open window's counts so far (?provisional=true):
	// counted from the events at the read, window_end being that moment,
	// never stored. Absent on computed counts.
	Provisional bool `json:"provisional,omitempty"`
}

// countPageJSON is a listing of counts.
type countPageJSON struct {
	Items      []countJSON `json:"items"`
	NextCursor *string     `json:"next_cursor"`
	// NextWindow is the window open now, which the job counts once it
	// closes (at its end); null without a schedule.
	NextWindow *windowJSON `json:"next_window"`
}

func renderCount(c domain.WindowCount, provisional bool) countJSON {
	by := make(map[string]int64, len(c.ByAction))
	for a, n := range c.ByAction {
		by[string(a)] = n
	}
	return countJSON{
		UserID:      c.UserID,
		WindowStart: domain.FormatTime(c.Start),
		WindowEnd:   domain.FormatTime(c.End),
		Total:       c.Total,
		ByAction:    by,
		Provisional: provisional,
	}
}

func renderCountPage(p app.CountsPage) countPageJSON {
	out := countPageJSON{Items: make([]countJSON, 0, len(p.Counts)+len(p.Provisional)), NextWindow: renderWindow(p.Open)}
	for _, c := range p.Counts {
		out.Items = append(out.Items, renderCount(c, false))
	}
	for _, c := range p.Provisional {
		out.Items = append(out.Items, renderCount(c, true))
	}
	if p.Next != nil {
		c := p.Next.Encode()
		out.NextCursor = &c
	}
	return out
}

// v1CountView renders /v1 count listings.
var v1CountView = jsonView("v1counts", renderCountPage)

// windowJSON is a counting window.
type windowJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// renderWindow renders w, or nil (null) for the zero window: none.
func renderWindow(w domain.Window) *windowJSON {
	if !w.Valid() {
		return nil
	}
	return &windowJSON{Start: domain.FormatTime(w.Start), End: domain.FormatTime(w.End)}
}

// runJSON answers POST /v1/activity-counts/runs.
type runJSON struct {
	Windows []windowJSON `json:"windows"`
	Skipped int          `json:"skipped"`
	// NextWindow is the window open at the run, which no run computes:
	// the events just recorded are in it (null without a schedule).
	NextWindow *windowJSON `json:"next_window"`
}

// The query parameters of the count listings.
var countParams = []string{"user_id", "from", "to", "order", "limit", "cursor", "provisional"}

func countQuery(vals url.Values) domain.CountQuery {
	var q domain.CountQuery
	q.UserID = vals.Get("user_id")
	q.From = vals.Get("from")
	q.To = vals.Get("to")
	q.Order = vals.Get("order")
	q.Limit = vals.Get("limit")
	q.Cursor = vals.Get("cursor")
	return q
}

// listCounts is GET /v1/activity-counts and GET
// /v1/users/{user_id}/activity-counts.
func (s *Server) listCounts(w http.ResponseWriter, r *http.Request) {
	vals, err := listingParams(r, countListing)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	provisional, err := app.ParseProvisional(vals.Get("provisional"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	l, err := s.countUC.List(r.Context(), principalFrom(r.Context()), countQuery(vals),
		app.CountListOptions{Provisional: provisional}, v1CountView.name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeListing(w, r, l, v1CountView, s.fail)
}

// runCounts is POST /v1/activity-counts/runs: an admin has the windows
// due now computed (or, when none is due, the last one again). 202: with
// a queue, they are computed after the answer.
func (s *Server) runCounts(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	// No body, or an empty JSON object: there is nothing to say.
	if r.ContentLength != 0 {
		if err := s.noBody(w, r); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	run, err := s.countUC.Trigger(r.Context(), principalFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := runJSON{Windows: make([]windowJSON, len(run.Windows)), Skipped: run.Skipped, NextWindow: renderWindow(run.Open)}
	for i, win := range run.Windows {
		out.Windows[i] = windowJSON{Start: domain.FormatTime(win.Start), End: domain.FormatTime(win.End)}
	}
	s.writeJSON(w, r, http.StatusAccepted, out)
}
