package httpapi_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

// Form and multipart bodies on the activity-logger routes, as Django REST
// Framework's default parsers (FormParser, MultiPartParser) took them
// (docs/compat.md, "Activity-logger surface"): the same rules as a JSON
// body, and JSON only everywhere else.

const formType = "application/x-www-form-urlencoded"

// part is one part of a multipart body: a text field, or a file when
// file is set.
type part struct {
	name, value, file, contentType string
}

// multipartBody builds a multipart/form-data body and its Content-Type.
func multipartBody(t testing.TB, parts ...part) (body, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := `form-data; name="` + p.name + `"`
		if p.file != "" {
			disp += `; filename="` + p.file + `"`
		}
		h.Set("Content-Disposition", disp)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(p.value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), mw.FormDataContentType()
}

func TestActivityLoggerForms(t *testing.T) {
	mp := func(parts ...part) [2]string {
		body, ct := multipartBody(t, parts...)
		return [2]string{body, ct}
	}
	form := func(body string) [2]string { return [2]string{body, formType} }
	meta := url.QueryEscape(`{"ip": "192.168.0.1", "device": "Chrome"}`)

	t.Run("create", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			req      [2]string // body, Content-Type
			action   string
			metadata string
		}{
			{"form", form("action=LOGIN&metadata=" + meta), "LOGIN", `{"ip": "192.168.0.1", "device": "Chrome"}`},
			{"form, charset and any case", [2]string{"action=upload_file&metadata=%7B%7D", formType + "; charset=UTF-8"}, "UPLOAD_FILE", `{}`},
			{"form, read-only and unknown fields ignored",
				form("id=7&user=2&timestamp=2001-01-01T00%3A00%3A00Z&status=DONE&colour=red&action=logout"), "LOGOUT", `{}`},
			{"form, empty metadata", form("action=login&metadata="), "LOGIN", `{}`},
			{"form, null metadata", form("action=login&metadata=null"), "LOGIN", `{}`},
			{"form, '+' is a space", form("metadata=%7B%22device%22%3A%22iPhone+14%22%7D&action=login"), "LOGIN", `{"device":"iPhone 14"}`},
			{"multipart", mp(part{name: "action", value: "LOGIN"}, part{name: "metadata", value: `{"ip": "192.168.0.1"}`}), "LOGIN", `{"ip": "192.168.0.1"}`},
			{"multipart, UTF-8 part and a file under another name ignored",
				mp(part{name: "action", value: "viewed", contentType: "text/plain; charset=utf-8"},
					part{name: "attachment", file: "a.txt", value: "ignored"}, part{name: "user", value: "2"}), "VIEWED", `{}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cf := newCompatFixture(t, memoryStore)
				l := cf.call("POST", "/api/logs/", cf.user(1), tc.req[0], "Content-Type", tc.req[1]).logEntry(http.StatusCreated)
				if l.User != 1 || l.Action != tc.action || l.Status != "PENDING" {
					t.Errorf("created %+v, want user 1, %s, PENDING", l, tc.action)
				}
				if !sameJSON(t, l.Metadata, tc.metadata) {
					t.Errorf("metadata %s, want %s", l.Metadata, tc.metadata)
				}
				if es := cf.stored(); len(es) != 1 || es[0].ID.String() != uuidOf(l.ID.String()) || !sameJSON(t, es[0].Metadata, tc.metadata) {
					t.Errorf("stored %+v", es)
				}
			})
		}
	})

	t.Run("refused like JSON, naming the field", func(t *testing.T) {
		cf := newCompatFixture(t, memoryStore)
		u1 := cf.user(1)
		for _, tc := range []struct {
			name  string
			req   [2]string
			field string
			code  string // "" when the domain's rule decides
		}{
			{"no action", form("metadata=%7B%7D"), "action", "required"},
			{"empty form", form(""), "action", "required"},
			{"unknown action", form("action=dance"), "action", "unknown_action"},
			{"metadata that is not JSON", form("action=login&metadata=%7Bip%3A1"), "metadata", "malformed"},
			{"metadata text that is no object", form("action=login&metadata=%22x%22"), "metadata", "not_object"},
			{"metadata that is whitespace", form("action=login&metadata=+"), "metadata", "malformed"},
			{"action twice", form("action=login&action=logout"), "action", "repeated"},
			{"metadata twice", form("action=login&metadata=%7B%7D&metadata=%7B%7D"), "metadata", "repeated"},
			{"an ignored field twice", form("action=login&colour=red&colour=blue"), "colour", "repeated"},
			{"action not UTF-8", form("action=%FF"), "action", "malformed"},
			{"multipart, action twice", mp(part{name: "action", value: "login"}, part{name: "action", value: "login"}), "action", "repeated"},
			{"multipart, bad metadata", mp(part{name: "action", value: "login"}, part{name: "metadata", value: "{"}), "metadata", "malformed"},
			{"multipart, a file as metadata", mp(part{name: "action", value: "login"}, part{name: "metadata", file: "m.json", value: "{}"}), "metadata", "wrong_type"},
			{"multipart, a part in Latin-1", mp(part{name: "action", value: "login", contentType: "text/plain; charset=iso-8859-1"}), "action", "unsupported"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cf.t = t
				r := cf.call("POST", "/api/logs/", u1, tc.req[0], "Content-Type", tc.req[1])
				p, m := r.logsProblem(http.StatusBadRequest)
				if want := []string{tc.field + ":" + tc.code}; !slices.Equal(p.codes(), want) {
					t.Errorf("codes %q, want %q: %s", p.codes(), want, r.body)
				}
				drf(t, m, tc.field)
			})
		}
		cf.t = t
		// Bodies that are no form at all.
		for _, req := range [][2]string{
			form("action=%zz"),
			{"--x\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nlogin", "multipart/form-data; boundary=x"}, // no closing boundary
			{"action=login", "multipart/form-data"}, // no boundary
		} {
			p, _ := cf.call("POST", "/api/logs/", u1, req[0], "Content-Type", req[1]).logsProblem(http.StatusBadRequest)
			if !strings.Contains(p.Detail, "malformed") {
				t.Errorf("%q as %s: detail %q", req[0], req[1], p.Detail)
			}
		}
		for _, ct := range []string{formType + "; charset=iso-8859-1", "text/plain", "multipart/mixed; boundary=x"} {
			p, _ := cf.call("POST", "/api/logs/", u1, "action=login", "Content-Type", ct).logsProblem(http.StatusUnsupportedMediaType)
			if !strings.Contains(p.Detail, "charset") && !strings.Contains(p.Detail, formType) {
				t.Errorf("%s: detail %q names neither the charset nor the types taken", ct, p.Detail)
			}
		}
		if es := cf.stored(); len(es) != 0 {
			t.Errorf("refused forms stored %d events", len(es))
		}
	})

	t.Run("bounded by MAX_BODY_BYTES", func(t *testing.T) {
		cf := newCompatFixture(t, memoryStore)
		u1 := cf.user(1)
		big := strings.Repeat("x", 1<<20)
		for _, req := range [][2]string{form("action=login&pad=" + big), mp(part{name: "action", value: "login"}, part{name: "pad", value: big}),
			mp(part{name: "action", value: "login"}, part{name: "upload", file: "big.bin", value: big})} {
			cf.call("POST", "/api/logs/", u1, req[0], "Content-Type", req[1]).logsProblem(http.StatusRequestEntityTooLarge)
			// Chunked: the length is not known in advance.
			rq := newRawRequest("POST", "/api/logs/", req[0])
			rq.ContentLength = -1
			rq.Header.Set("Content-Type", req[1])
			rq.Header.Set("Authorization", "Token "+u1)
			cf.serveRaw(rq).logsProblem(http.StatusRequestEntityTooLarge)
		}
		if es := cf.stored(); len(es) != 0 {
			t.Errorf("stored %d events", len(es))
		}
	})

	t.Run("Idempotency-Key: a form and its JSON are one request", func(t *testing.T) {
		cf := newCompatFixture(t, memoryStore)
		u1 := cf.user(1)
		key := []string{"Idempotency-Key", "k1"}
		first := cf.call("POST", "/api/logs/", u1, "action=login&metadata="+url.QueryEscape(`{"a":1}`),
			append([]string{"Content-Type", formType}, key...)...).logEntry(http.StatusCreated)
		body, ct := multipartBody(t, part{name: "action", value: "LOGIN"}, part{name: "metadata", value: `{"a":1}`})
		again := cf.call("POST", "/api/logs/", u1, body, append([]string{"Content-Type", ct}, key...)...)
		if l := again.logEntry(http.StatusOK); l.ID.String() != first.ID.String() {
			t.Errorf("multipart retry answered %s, want the stored %s", l.ID.String(), first.ID.String())
		}
		if l := cf.call("POST", "/api/logs/", u1, `{"action":"login","metadata":{"a":1}}`, key...).logEntry(http.StatusOK); l.ID.String() != first.ID.String() {
			t.Errorf("JSON retry answered %s, want the stored %s", l.ID.String(), first.ID.String())
		}
		cf.call("POST", "/api/logs/", u1, "action=logout", append([]string{"Content-Type", formType}, key...)...).logsProblem(http.StatusConflict)
		if es := cf.stored(); len(es) != 1 {
			t.Errorf("stored %d events, want 1", len(es))
		}
	})

	t.Run("PATCH status by form", func(t *testing.T) {
		cf := newCompatFixture(t, memoryStore)
		u1 := cf.user(1)
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		path := "/api/logs/update/" + l.ID.String() + "/"
		patch := func(req [2]string) *response {
			return cf.call("PATCH", path, u1, req[0], "Content-Type", req[1])
		}
		if p := patch(form("status=IN_PROGRESS&action=LOGOUT")).logEntry(http.StatusOK); p.Status != "IN_PROGRESS" || p.Action != "LOGIN" || p.ID.String() != l.ID.String() {
			t.Errorf("form PATCH answered %+v", p)
		}
		patch(form("status=PENDING")).patchError(http.StatusBadRequest, "Invalid status transition: IN_PROGRESS -> PENDING")
		for _, req := range [][2]string{form(""), form("status="), form("status=done"), form("colour=red"), mp(part{name: "state", value: "DONE"})} {
			patch(req).patchError(http.StatusBadRequest, "Invalid status")
		}
		for _, req := range [][2]string{form("status=DONE&status=DONE"), form("status=%"), mp(part{name: "status", file: "s.txt", value: "DONE"})} {
			patch(req).patchError(http.StatusBadRequest, "Invalid request body")
		}
		if e := cf.get(l.ID.String()); e.Status != domain.StatusInProgress {
			t.Errorf("stored status %s after refused PATCHes", e.Status)
		}
		if p := patch(mp(part{name: "status", value: "DONE"})).logEntry(http.StatusOK); p.Status != "DONE" {
			t.Errorf("multipart PATCH answered %+v", p)
		}
	})

	t.Run("/v1 and the event-tracking routes stay JSON-only", func(t *testing.T) {
		cf := newCompatFixture(t, memoryStore)
		u1 := cf.user(1)
		e := cf.create(u1, `{"action":"login"}`)
		for _, tc := range []struct{ method, path, body string }{
			{"POST", "/v1/events", "action=login"},
			{"POST", "/v1/events/batch", "events=x"},
			{"PATCH", "/v1/events/" + e.ID, "status=IN_PROGRESS"},
			{"POST", "/api/event", "user_id=1&action=login"},
		} {
			for _, req := range [][2]string{form(tc.body), mp(part{name: "action", value: "login"})} {
				r := cf.serve(request{method: tc.method, path: tc.path, body: req[0], token: u1, header: map[string]string{"Content-Type": req[1]}})
				p := r.problem(http.StatusUnsupportedMediaType)
				if !strings.HasSuffix(p.Detail, ": send application/json") {
					t.Errorf("%s %s: detail %q offers forms", tc.method, tc.path, p.Detail)
				}
			}
		}
		if es := cf.stored(); len(es) != 1 {
			t.Errorf("stored %d events, want 1", len(es))
		}
	})
}
