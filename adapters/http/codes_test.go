package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Every field a problem blames carries the code of the rule it broke, for
// clients to switch on (the message is for people).
func TestProblemCodes(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     []string
	}{
		{"unknown action", "POST", "/v1/events", `{"action":"dance"}`, 422, []string{"action:unknown_action"}},
		{"every rule of an event", "POST", "/v1/events",
			`{"id":"","user_id":1.5,"action":"","occurred_at":"soon","metadata":[1]}`, 422,
			[]string{"id:malformed", "user_id:out_of_range", "action:required", "occurred_at:malformed", "metadata:not_object"}},
		{"wrong JSON type", "POST", "/v1/events", `{"action":5}`, 400, []string{"action:wrong_type"}},
		{"unknown member", "POST", "/v1/events", `{"action":"login","colour":"red"}`, 400, []string{"colour:unknown_field"}},
		{"member twice", "POST", "/v1/events", `{"action":"login","action":"login"}`, 400, []string{"action:repeated"}},
		{"body not an object", "POST", "/v1/events", `[]`, 400, []string{"(body):wrong_type"}},
		{"bad listing", "GET", "/v1/events?user_id=x&status=LATE&limit=0&order=up", "", 422,
			[]string{"user_id:out_of_range", "status:not_one_of", "order:not_one_of", "limit:out_of_range"}},
		{"too many actions", "GET", "/v1/events?action=" + strings.Repeat("a,", 101), "", 422, []string{"action:too_many"}},
		{"unknown parameter", "GET", "/v1/events?colour=red", "", 400, []string{"colour:unknown_field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			r := f.do(tc.method, tc.path, f.u1, tc.body)
			p := r.problem(tc.status)
			if got := p.codes(); !slices.Equal(got, tc.want) {
				t.Errorf("codes = %q, want %q: %s", got, tc.want, r.body)
			}
		})
	}
	f.t = t
	e := f.create(f.u1, `{"action":"login"}`)
	p := f.do("PATCH", "/v1/events/"+e.ID, f.u1, `{"status":"LATE"}`).problem(http.StatusUnprocessableEntity)
	if got := p.codes(); !slices.Equal(got, []string{"status:not_one_of"}) {
		t.Errorf("status codes = %q", got)
	}
	p = f.do("PATCH", "/v1/events/"+e.ID, f.u1, `{"status":"DONE"}`).problem(http.StatusConflict)
	if got := p.codes(); !slices.Equal(got, []string{"status:conflict"}) {
		t.Errorf("invalid transition codes = %q", got)
	}
}
