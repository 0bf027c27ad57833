package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestErasure(t *testing.T) {
	f := newFixture(t)
	a := f.create(f.u1, `{"action":"login","metadata":{"ip":"10.0.0.1","email":"a@example.com"}}`)
	f.create(f.u2, `{"action":"login","metadata":{"ip":"10.0.0.2"}}`)
	f.do("GET", "/v1/events?user_id=1", f.u1, "").want(http.StatusOK) // cached now, if a cache were on

	f.do("POST", "/v1/users/1/erasure", f.u1, "").want(http.StatusForbidden)
	r := f.do("POST", "/v1/users/1/erasure", f.admin, "").want(http.StatusOK).object()
	if r["erased"].(float64) != 1 || r["user_id"].(float64) != 1 || r["from"] != nil || !strings.HasPrefix(r["by"].(string), "token:") {
		t.Errorf("erasure = %v", r)
	}
	if e := f.do("GET", "/v1/events/"+a.ID, f.u1, "").want(http.StatusOK).event(); string(e.Metadata) != "{}" || e.Action != "login" {
		t.Errorf("after the erasure: %+v", e)
	}
	page := f.do("GET", "/v1/changes", f.u1, "").want(http.StatusOK)
	if strings.Contains(string(page.body), "10.0.0.1") {
		t.Errorf("the feed still shows erased metadata: %s", page.body)
	}
	m := page.object()
	items := m["items"].([]any)
	last := items[len(items)-1].(map[string]any)
	if last["kind"] != "user.erased" || last["event"] != nil || last["erasure"].(map[string]any)["erased"].(float64) != 1 {
		t.Errorf("user 1's last change = %v", last)
	}
	if f.do("GET", "/v1/changes", f.u2, "").want(http.StatusOK); strings.Contains(string(f.do("GET", "/v1/changes", f.u2, "").body), "user.erased") {
		t.Error("user 2 sees user 1's erasure")
	}
	if e := f.do("GET", "/v1/events?user_id=2", f.u2, "").want(http.StatusOK); !strings.Contains(string(e.body), "10.0.0.2") {
		t.Error("another user's metadata was erased")
	}
	again := f.do("POST", "/v1/users/1/erasure", f.admin, `{"from":"2020-01-01T00:00:00Z"}`).want(http.StatusOK).object()
	if again["erased"].(float64) != 0 {
		t.Errorf("erasing again = %v", again)
	}
	for _, tc := range []struct{ path, body, field string }{
		{"/v1/users/1/erasure", `{"from":"yesterday"}`, "from"},
		{"/v1/users/1/erasure", `{"from":"2025-02-01T00:00:00Z","to":"2025-01-01T00:00:00Z"}`, "to"},
		{"/v1/users/1/erasure", `{"everything":true}`, "everything"},
	} {
		r := f.do("POST", tc.path, f.admin, tc.body)
		if r.code != http.StatusBadRequest && r.code != http.StatusUnprocessableEntity {
			t.Fatalf("%s: status %d", tc.body, r.code)
		}
		if p := r.problem(r.code); !p.blames(tc.field) {
			t.Errorf("%s: the problem does not name %s: %s", tc.body, tc.field, r.body)
		}
	}
	f.do("POST", "/v1/users/0/erasure", f.admin, "").want(http.StatusNotFound)
}
