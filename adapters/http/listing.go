package httpapi

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

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
// how it was served.
func writeListing[P any](s *Server, w http.ResponseWriter, r *http.Request, l app.Listing[P], v view[P], fail failFunc) {
	b := l.Body
	if b == nil {
		var err error
		if b, err = v.render(l.Page); err != nil {
			fail(w, r, err)
			return
		}
		l.Keep(b)
	}
	s.writeList(w, b, l.Cache)
}

// listingParams reads the parameters of a /v1 listing: the allowed ones
// from the query string (parseQuery) and, on the /v1/users/{user_id}/...
// routes, user_id from the path, where the query string may not name it.
func listingParams(r *http.Request, allowed []string, repeatable ...string) (url.Values, error) {
	if rc := chi.RouteContext(r.Context()); rc == nil || !slices.Contains(rc.URLParams.Keys, "user_id") {
		return parseQuery(r, allowed, repeatable...)
	}
	user, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	allowed = slices.DeleteFunc(slices.Clone(allowed), func(p string) bool { return p == "user_id" })
	vals, err := parseQuery(r, allowed, repeatable...)
	if err != nil {
		return nil, err
	}
	vals.Set("user_id", user)
	return vals, nil
}

// errNoSuchUser answers a path naming a user that cannot exist.
var errNoSuchUser = &httpError{status: http.StatusNotFound, slug: slugNotFound,
	detail: "there is no such user: a user id is a positive integer"}

// pathUser reads the {user_id} path segment: a positive int64 in
// canonical decimal form, or errNoSuchUser (a 404: no such resource).
// It returns the segment, for the use case's query.
func pathUser(r *http.Request) (string, error) {
	raw := chi.URLParam(r, "user_id")
	if _, ok := domain.ParseUserID(raw); !ok {
		return "", errNoSuchUser
	}
	return raw, nil
}
