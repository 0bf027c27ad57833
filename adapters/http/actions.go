package httpapi

import (
	"net/http"
)

// actionsJSON answers GET /v1/actions: the configured vocabulary
// (ACTIONS). With any true, every well-formed action is accepted and
// actions is empty.
type actionsJSON struct {
	Actions []string `json:"actions"`
	Any     bool     `json:"any"`
}

// actions is GET /v1/actions (events:read): the actions an event may
// name, sorted, so that a client can offer them as choices.
func (s *Server) actions(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.events.Actions(principalFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := actionsJSON{Actions: []string{}, Any: v.Any()}
	for _, a := range v.Actions() {
		out.Actions = append(out.Actions, string(a))
	}
	s.writeJSON(w, r, http.StatusOK, out)
}
