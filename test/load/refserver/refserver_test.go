package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/test/testenv"
)

// fakeSource answers list paths like activityd, with a body naming the
// user and the limit; user 0 of fail (when set) gets a 500.
func fakeSource(t *testing.T, fail int64) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Token secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var u int64
		var rest string
		if _, err := fmt.Sscanf(r.URL.Path, "/v1/users/%d/%s", &u, &rest); err != nil || rest != "events" {
			http.NotFound(w, r)
			return
		}
		if u == fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"items":[{"user_id":%d,"limit":%q}],"next_cursor":null}`, u, r.URL.Query().Get("limit"))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// start runs the refserver with args until the test ends, and returns its
// base URL.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, args, io.Discard, &stderr, ready) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("refserver exited %d", code)
			}
		})
		return "http://" + addr
	case code := <-done:
		cancel()
		t.Fatalf("refserver exited %d before listening: %s", code, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("refserver did not start")
	}
	return ""
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// checkServes asserts that base answers every user's page with the bytes
// the source answered, as a cached activityd would, and nothing else.
func checkServes(t *testing.T, base string, users int64) {
	t.Helper()
	for u := int64(1); u <= users; u++ {
		status, h, body := get(t, base+listPath(u, 50))
		want := fmt.Sprintf(`{"items":[{"user_id":%d,"limit":"50"}],"next_cursor":null}`, u)
		if status != 200 || body != want {
			t.Errorf("user %d: %d %q, want 200 %q", u, status, body, want)
		}
		if h.Get("Content-Type") != "application/json" || h.Get("X-Cache") != "HIT" || h.Get("Content-Length") != fmt.Sprint(len(want)) {
			t.Errorf("user %d: headers %v", u, h)
		}
	}
	for _, path := range []string{listPath(users+1, 50), listPath(1, 10), "/v1/users/1/events", "/"} {
		if status, _, _ := get(t, base+path); status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, status)
		}
	}
	if status, _, _ := get(t, base+"/healthz"); status != 200 {
		t.Errorf("healthz: %d", status)
	}
}

func TestMapMode(t *testing.T) {
	src, calls := fakeSource(t, 0)
	base := start(t, "-source", src.URL, "-token", "secret", "-users", "7", "-fetch-c", "3")
	if n := calls.Load(); n != 7 {
		t.Errorf("fetched %d pages, want 7 (one per user)", n)
	}
	checkServes(t, base, 7)
	if n := calls.Load(); n != 7 {
		t.Errorf("the source got %d requests, want only the 7 fetches", n)
	}
}

func TestFetchFailureStopsStart(t *testing.T) {
	src, _ := fakeSource(t, 3)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-source", src.URL, "-token", "secret", "-users", "5"}, io.Discard, &stderr, nil)
	if code != 1 || !strings.Contains(stderr.String(), "status 500") {
		t.Errorf("exit %d, stderr %q; want 1 naming the 500", code, stderr.String())
	}
	code = run(context.Background(), []string{"-source", src.URL, "-token", "wrong", "-users", "2"}, io.Discard, &stderr, nil)
	if code != 1 {
		t.Errorf("a refused token: exit %d, want 1", code)
	}
}

func TestRedisMode(t *testing.T) {
	url, prefix := testenv.RedisURL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx := context.Background()
	count := func() int {
		keys, err := client.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}

	src, _ := fakeSource(t, 0)
	sub := t.Run("serves", func(t *testing.T) {
		base := start(t, "-source", src.URL, "-token", "secret", "-users", "4", "-redis", url, "-prefix", prefix)
		if n := count(); n != 4 {
			t.Errorf("%d keys under the prefix, want 4", n)
		}
		checkServes(t, base, 4)
		// each request reads Redis: a page deleted there is gone
		if err := client.Del(ctx, prefix+"ref:"+listPath(2, 50)).Err(); err != nil {
			t.Fatal(err)
		}
		if status, _, _ := get(t, base+listPath(2, 50)); status != http.StatusNotFound {
			t.Errorf("a page deleted from Redis: %d, want 404", status)
		}
	})
	if !sub {
		return
	}
	if n := count(); n != 0 {
		t.Errorf("%d keys left after the refserver stopped, want 0", n)
	}

	// -cleanup deletes every key under the prefix, and only those
	for _, k := range []string{prefix + "a:v:x", prefix + "a:g:y", prefix + "ref:/z"} {
		client.Set(ctx, k, "1", time.Minute)
	}
	other := prefix[:len(prefix)-1] + "other"
	client.Set(ctx, other, "1", time.Minute)
	defer client.Del(ctx, other)
	var out bytes.Buffer
	if code := run(ctx, []string{"-redis", url, "-prefix", prefix, "-cleanup"}, &out, io.Discard, nil); code != 0 {
		t.Fatalf("-cleanup exited %d", code)
	}
	if n := count(); n != 0 || !strings.Contains(out.String(), "deleted 3 keys") {
		t.Errorf("after -cleanup: %d keys, output %q; want 0 and 3 deleted", n, out.String())
	}
	if n, _ := client.Exists(ctx, other).Result(); n != 1 {
		t.Error("-cleanup deleted a key outside its prefix")
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Errorf("globEscape = %q", got)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},                                   // no -source
		{"-source", "http://192.0.2.1:8080"}, // not loopback
		{"-source", "http://127.0.0.1:1", "-addr", "0.0.0.0:9000"},
		{"-source", "http://127.0.0.1:1", "-users", "0"},
		{"-source", "http://127.0.0.1:1", "-redis", "redis://127.0.0.1:6379/15"}, // no prefix
		{"-source", "http://127.0.0.1:1", "-redis", "http://x", "-prefix", "p:"},
		{"-cleanup", "-prefix", "p:"}, // no -redis
		{"-redis", "redis://127.0.0.1:6379/15", "-cleanup"},
		{"extra"},
	} {
		if code := run(context.Background(), args, io.Discard, io.Discard, nil); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
