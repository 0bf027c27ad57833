package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

type webhookDoc struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Actions []string `json:"actions"`
	UserIDs []int64  `json:"user_ids"`
	Kinds   []string `json:"kinds"`
	Secrets []struct {
		CreatedAt string  `json:"created_at"`
		ExpiresAt *string `json:"expires_at"`
	} `json:"secrets"`
	Position int64  `json:"position"`
	Paused   bool   `json:"paused"`
	Failures int    `json:"failures"`
	Secret   string `json:"secret"`
}

func (r *response) webhook() webhookDoc {
	r.t.Helper()
	var d webhookDoc
	if err := json.Unmarshal(r.body, &d); err != nil {
		r.t.Fatalf("%s: not a webhook: %v", r, err)
	}
	return d
}

func TestWebhooksAdmin(t *testing.T) {
	f := newFixture(t)
	f.create(f.u1, `{"action":"login"}`) // the feed's head is 1

	r := f.do("POST", "/v1/webhooks", f.admin, `{"url":"https://hooks.example.com/a","actions":["login"],"user_ids":[1],"kinds":["event.recorded"]}`).want(http.StatusCreated)
	w := r.webhook()
	if !strings.HasPrefix(w.ID, "wh_") || !strings.HasPrefix(w.Secret, "whsec_") || r.hdr.Get("Location") != "/v1/webhooks/"+w.ID {
		t.Fatalf("created %+v, Location %q", w, r.hdr.Get("Location"))
	}
	if w.Position != 1 || len(w.Secrets) != 1 || w.Secrets[0].ExpiresAt != nil {
		t.Errorf("created: position %d (want the head, 1), secrets %+v", w.Position, w.Secrets)
	}
	if w2 := f.do("POST", "/v1/webhooks", f.admin, `{"url":"https://hooks.example.com/b","from":0}`).want(http.StatusCreated).webhook(); w2.Position != 0 {
		t.Errorf("from 0: position %d", w2.Position)
	}
	// The secret is shown once: never by GET or list.
	got := f.do("GET", "/v1/webhooks/"+w.ID, f.admin, "").want(http.StatusOK)
	list := f.do("GET", "/v1/webhooks", f.admin, "").want(http.StatusOK)
	for _, body := range [][]byte{got.body, list.body} {
		if strings.Contains(string(body), w.Secret) || strings.Contains(string(body), "whsec_") {
			t.Errorf("a secret value is shown: %s", body)
		}
	}
	if g := got.webhook(); g.URL != w.URL || len(g.Actions) != 1 || g.Actions[0] != "login" || len(g.UserIDs) != 1 || g.Kinds[0] != "event.recorded" {
		t.Errorf("GET = %+v", g)
	}

	paused := f.do("PATCH", "/v1/webhooks/"+w.ID, f.admin, `{"paused":true,"actions":[]}`).want(http.StatusOK).webhook()
	if !paused.Paused || len(paused.Actions) != 0 || paused.URL != w.URL {
		t.Errorf("paused: %+v", paused)
	}
	rot := f.do("POST", "/v1/webhooks/"+w.ID+"/rotate", f.admin, "").want(http.StatusOK).webhook()
	if rot.Secret == "" || rot.Secret == w.Secret || len(rot.Secrets) != 2 || rot.Secrets[0].ExpiresAt != nil || rot.Secrets[1].ExpiresAt == nil {
		t.Errorf("rotated: %+v (want a new secret, the old one expiring)", rot)
	}
	rep := f.do("POST", "/v1/webhooks/"+w.ID+"/replay", f.admin, `{"from":0}`).want(http.StatusOK).webhook()
	if rep.Position != 0 || rep.Paused {
		t.Errorf("replayed: %+v", rep)
	}
	if d := f.do("GET", "/v1/webhooks/"+w.ID+"/deliveries?limit=5", f.admin, "").want(http.StatusOK).object(); len(d["items"].([]any)) != 0 {
		t.Errorf("deliveries before any: %v", d)
	}
	f.do("DELETE", "/v1/webhooks/"+w.ID, f.admin, "").want(http.StatusNoContent)
	f.do("GET", "/v1/webhooks/"+w.ID, f.admin, "").want(http.StatusNotFound)
	f.do("DELETE", "/v1/webhooks/"+w.ID, f.admin, "").want(http.StatusNotFound)
	f.do("GET", "/v1/webhooks/"+w.ID+"/deliveries", f.admin, "").want(http.StatusNotFound)

	// An id of another shape names nothing (and never reaches a store
	// that would refuse its bytes).
	for _, id := range []string{"%FF", "%00", "wh_x", "wh_" + strings.Repeat("A", 26)} {
		f.do("GET", "/v1/webhooks/"+id, f.admin, "").want(http.StatusNotFound)
		f.do("POST", "/v1/webhooks/"+id+"/rotate", f.admin, "").want(http.StatusNotFound)
	}

	// Admins only.
	f.do("GET", "/v1/webhooks", f.u1, "").want(http.StatusForbidden)
	f.do("POST", "/v1/webhooks", f.u1, `{"url":"https://hooks.example.com/a"}`).want(http.StatusForbidden)
}

func TestWebhooksBadInput(t *testing.T) {
	f := newFixture(t)
	before := f.do("GET", "/v1/webhooks", f.admin, "").want(http.StatusOK).body
	for _, tc := range []struct{ body, field string }{
		{`{}`, "url"},
		{`{"url":"http://hooks.example.com/a"}`, "url"},     // http without WEBHOOK_ALLOW_HTTP
		{`{"url":"https://127.0.0.1/a"}`, "url"},            // loopback
		{`{"url":"https://10.1.2.3/a"}`, "url"},             // private
		{`{"url":"https://169.254.169.254/latest"}`, "url"}, // cloud metadata
		{`{"url":"https://[::1]/a"}`, "url"},                // IPv6 loopback
		{`{"url":"https://user:pw@hooks.example.com"}`, "url"},
		{`{"url":"https://hooks.example.com","kinds":["event.deleted"]}`, "kinds[0]"},
		{`{"url":"https://hooks.example.com","user_ids":[0]}`, "user_ids[0]"},
		{`{"url":"https://hooks.example.com","actions":["Not An Action!"]}`, "actions[0]"},
		{`{"url":"https://hooks.example.com","actions":"login"}`, "actions"},
		{`{"url":"https://hooks.example.com","from":-1}`, "from"},
		{`{"url":"https://hooks.example.com","secret":"mine"}`, "secret"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			r := f.do("POST", "/v1/webhooks", f.admin, tc.body)
			if r.code != http.StatusBadRequest && r.code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d: %s", r.code, r.body)
			}
			if p := r.problem(r.code); !p.blames(tc.field) {
				t.Errorf("the problem does not name %s: %s", tc.field, r.body)
			}
		})
	}
	if after := f.do("GET", "/v1/webhooks", f.admin, "").want(http.StatusOK).body; string(after) != string(before) {
		t.Errorf("refused subscriptions changed the list: %s", after)
	}
	w := f.do("POST", "/v1/webhooks", f.admin, `{"url":"https://hooks.example.com/a"}`).want(http.StatusCreated).webhook()
	for _, tc := range []struct{ path, body, field string }{
		{"/replay", `{}`, "from"},
		{"/replay", `{"from":-3}`, "from"},
		{"", `{"from":0}`, "from"},
		{"", `{"url":"https://192.168.0.1/"}`, "url"},
	} {
		method := "PATCH"
		if tc.path != "" {
			method = "POST"
		}
		r := f.do(method, "/v1/webhooks/"+w.ID+tc.path, f.admin, tc.body)
		if r.code != http.StatusBadRequest && r.code != http.StatusUnprocessableEntity {
			t.Fatalf("%s %s %s: status %d: %s", method, tc.path, tc.body, r.code, r.body)
		}
		if p := r.problem(r.code); !p.blames(tc.field) {
			t.Errorf("%s %s: the problem does not name %s: %s", tc.path, tc.body, tc.field, r.body)
		}
	}
	if g := f.do("GET", "/v1/webhooks/"+w.ID, f.admin, "").want(http.StatusOK).webhook(); g.URL != "https://hooks.example.com/a" {
		t.Errorf("a refused update changed the URL: %s", g.URL)
	}
}
