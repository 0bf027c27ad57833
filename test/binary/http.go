package binary

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is an HTTP answer, its body also decoded as a JSON object when
// it is one.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// Call sends a request with `Authorization: Token <token>` (none if token
// is empty) and a JSON body (none if body is empty).
func Call(t *testing.T, method, url, token, body string) Response {
	t.Helper()
	if token != "" {
		token = "Token " + token
	}
	return Do(t, method, url, token, body)
}

// CallBearer sends a request with `Authorization: Bearer <token>` and a
// JSON body (none if body is empty).
func CallBearer(t *testing.T, method, url, token, body string) Response {
	t.Helper()
	return Do(t, method, url, "Bearer "+token, body)
}

// Do sends a request with this Authorization header (none if empty) and a
// JSON body (none if empty); the test fails if it gets no answer.
func Do(t *testing.T, method, url, authorization, body string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := Response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// Want fails the test unless r has this status.
func Want(t *testing.T, r Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
}
