package httpapi

import (
	"net/http"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// meJSON answers GET /v1/me: who the request's credential acts as.
type meJSON struct {
	Name      string   `json:"name"`
	UserID    *int64   `json:"user_id"` // null: bound to no user
	Scopes    []string `json:"scopes"`
	Admin     bool     `json:"admin"`
	AnyUser   bool     `json:"any_user"`
	ExpiresAt *string  `json:"expires_at"` // null: never
	Kind      string   `json:"kind"`
}

func renderMe(id app.Identity) meJSON {
	out := meJSON{
		Name:    id.Name,
		Scopes:  make([]string, len(id.Scopes)),
		Admin:   id.Admin,
		AnyUser: id.AnyUser,
		Kind:    string(id.Kind),
	}
	for i, sc := range id.Scopes {
		out.Scopes[i] = string(sc)
	}
	if id.UserID != 0 {
		u := id.UserID
		out.UserID = &u
	}
	if !id.ExpiresAt.IsZero() {
		e := domain.FormatTime(id.ExpiresAt)
		out.ExpiresAt = &e
	}
	return out
}

// me is GET /v1/me: any credential the server accepts may read what it
// is (no scope needed), so that a client can show who is signed in, and
// until when, without trying requests to find out what it may do.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, renderMe(app.Me(principalFrom(r.Context()))))
}
