package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"max of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p50 of four is the second (nearest rank)", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of four is the last", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"tiny p is the first", ms(1, 2, 3), 0.001, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.xs...)
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
		for i := range in {
			if in[i] != c.xs[i] {
				t.Errorf("median modified its input: %v", c.xs)
			}
		}
	}
}

func TestMedianOfSumsErrors(t *testing.T) {
	m := medianOf([]summary{
		{Scenario: "create", RPS: 10, P99: 5, Errors: 1, ByStatus: map[string]int64{"503": 1}},
		{Scenario: "create", RPS: 30, P99: 1},
		{Scenario: "create", RPS: 20, P99: 3, Errors: 2, ByStatus: map[string]int64{"503": 1, "net": 1}},
	})
	if m.RPS != 20 || m.P99 != 3 || m.MedianOf != 3 {
		t.Errorf("median: rps %v p99 %v of %d, want 20, 3, 3", m.RPS, m.P99, m.MedianOf)
	}
	if m.Errors != 3 || m.ByStatus["503"] != 2 || m.ByStatus["net"] != 1 {
		t.Errorf("errors %d %v, want 3 {503:2 net:1}", m.Errors, m.ByStatus)
	}
}

func TestLoopbackURL(t *testing.T) {
	ok := []string{
		"http://127.0.0.1:8080",
		"http://127.9.8.7:80/",
		"http://localhost:8080",
		"http://LOCALHOST",
		"http://[::1]:8080",
		"https://127.0.0.1:8443",
		"http://[::ffff:127.0.0.1]:8080",
	}
	for _, raw := range ok {
		if _, err := checkLoopbackURL(raw); err != nil {
			t.Errorf("checkLoopbackURL(%q) = %v, want accepted", raw, err)
		}
	}
	refused := []string{
		"http://10.0.0.1:8080",
		"http://0.0.0.0:8080",
		"http://[::]:8080",
		"http://192.168.1.1",
		"http://example.com",
		"http://localhost.example.com",
		"http://127.0.0.1.nip.io",
		"http://[fe80::1%25lo]:8080",
		"http://[::ffff:10.0.0.1]:8080",
		"ftp://127.0.0.1",
		"127.0.0.1:8080",
		"http://user:pw@127.0.0.1",
		"http://:8080",
		"",
	}
	for _, raw := range refused {
		if _, err := checkLoopbackURL(raw); err == nil {
			t.Errorf("checkLoopbackURL(%q) accepted, want refused", raw)
		}
	}
}

func TestLoopbackDialControl(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80":   true,
		"[::1]:80":       true,
		"10.1.2.3:80":    false,
		"[2001:db8::]:1": false,
		"nonsense":       false,
	} {
		if got := loopbackOnly("tcp", addr, nil) == nil; got != want {
			t.Errorf("loopbackOnly(%q) allowed = %v, want %v", addr, got, want)
		}
	}
}

func TestBatchItems(t *testing.T) {
	body := `{"items":[{"index":0,"status":201,"event":{"id":"x","status":"PENDING","metadata":{}}},` +
		`{"index":1,"status":422,"error":{"status":422}},{"index":2,"status":200,"event":{"status":"DONE"}}]}`
	items, created, existing := batchItems([]byte(body))
	if items != 3 || created != 1 || existing != 1 {
		t.Errorf("batchItems = %d, %d, %d; want 3, 1, 1", items, created, existing)
	}
	w := &worker{shared: &shared{cfg: &config{}}}
	if w.checkBatch([]byte(body), 3) {
		t.Error("checkBatch reported success for a batch with a failed item")
	}
	if w.errs["item:422"] != 1 || w.events != 1 {
		t.Errorf("errs %v events %d, want item:422=1, 1 event", w.errs, w.events)
	}
}

func TestEventBodiesAreJSON(t *testing.T) {
	var v map[string]any
	if err := json.Unmarshal(appendCreate(nil, 42), &v); err != nil {
		t.Fatalf("create body: %v", err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := json.Unmarshal(appendEvent(nil, 9, 7, at, 0), &v); err != nil {
		t.Fatalf("batch event: %v", err)
	}
	if v["occurred_at"] != "2026-01-02T03:04:05.000006Z" || v["user_id"] != float64(7) {
		t.Errorf("batch event = %v", v)
	}
}

// TestPaddedBatchBodies: -body-bytes brings a batch body just under the
// limit, as valid JSON with every event's metadata padded.
func TestPaddedBatchBodies(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		n     int
		limit int64
	}{
		{1000, 1 << 20},
		{1000, 512 << 10},
		{10, 64 << 10},
		{7, 500}, // below the plain body: no padding
	} {
		ats := make([]time.Time, tc.n)
		for i := range ats {
			ats[i] = now.Add(-time.Duration(i) * time.Hour)
		}
		users := func(i int64) int64 { return i%100 + 1 }
		plain := appendBatch(nil, 0, ats, users, 0)
		pad := batchPad(int64(len(plain)), tc.limit, tc.n)
		b := appendBatch(nil, 0, ats, users, pad)
		var v struct {
			Events []struct{ Metadata map[string]any }
		}
		if err := json.Unmarshal(b, &v); err != nil || len(v.Events) != tc.n {
			t.Fatalf("n=%d limit=%d: %d events, %v", tc.n, tc.limit, len(v.Events), err)
		}
		switch {
		case int64(len(plain)) >= tc.limit:
			if pad != 0 || len(b) != len(plain) {
				t.Errorf("n=%d limit=%d: padded a body already over the limit (pad %d)", tc.n, tc.limit, pad)
			}
		case int64(len(b)) > tc.limit || int64(len(b)) < tc.limit-int64(tc.n*(padField+1)):
			t.Errorf("n=%d limit=%d: body of %d bytes, want just under the limit", tc.n, tc.limit, len(b))
		default:
			got, _ := v.Events[0].Metadata["pad"].(string)
			if len(got) != pad {
				t.Errorf("n=%d: metadata pad of %d bytes, want %d", tc.n, len(got), pad)
			}
		}
	}
}

// TestHeadersScenario: the headers scenario counts a 431 as the expected
// answer and anything else (a server without a header limit answering
// 401) under its status.
func TestHeadersScenario(t *testing.T) {
	for _, tc := range []struct {
		maxHeader int
		code      int
		ok        int64
		errs      map[string]int64
	}{
		{64 << 10, 0, 6, map[string]int64{}},
		{4 << 20, 1, 0, map[string]int64{"401": 6}},
	} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
		}))
		srv.Config.MaxHeaderBytes = tc.maxHeader
		srv.Start()
		t.Cleanup(srv.Close)
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"-url", srv.URL, "-scenario", "headers", "-c", "3", "-n", "6",
			"-d", "10s", "-warmup", "0", "-json"}, &out, &errOut)
		var s summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("output %q: %v (stderr %q)", out.String(), err, errOut.String())
		}
		if code != tc.code || s.OK != tc.ok || fmt.Sprint(s.ByStatus) != fmt.Sprint(tc.errs) {
			t.Errorf("header limit %d: exit %d, %d ok, errors %v; want exit %d, %d ok, errors %v",
				tc.maxHeader, code, s.OK, s.ByStatus, tc.code, tc.ok, tc.errs)
		}
	}
}

// fakeServer answers like activityd enough for the scenarios; every
// fifth create is a 503.
func fakeServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var creates atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/events":
			if creates.Add(1)%5 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"x","status":"PENDING"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/events/batch":
			var in struct{ Events []json.RawMessage }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			var b bytes.Buffer
			b.WriteString(`{"items":[`)
			for i := range in.Events {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"index":%d,"status":201,"event":{"status":"PENDING"}}`, i)
			}
			b.WriteString(`]}`)
			w.Write(b.Bytes())
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/users/"):
			w.Header().Set("X-Cache", "HIT")
			io.WriteString(w, `{"items":[{"recorded_at":"a"},{"recorded_at":"b"}],"next_cursor":null}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &creates
}

func TestScenariosAgainstFakeServer(t *testing.T) {
	srv, _ := fakeServer(t)
	base := []string{"-url", srv.URL, "-token", "secret", "-c", "2", "-d", "2s", "-warmup", "0", "-json"}
	cases := []struct {
		args     []string
		code     int
		check    func(s summary) error
		lastLine bool
	}{
		{[]string{"-scenario", "create", "-n", "50"}, 1, func(s summary) error {
			if s.Requests != 50 || s.OK != 40 || s.Errors != 10 || s.ByStatus["503"] != 10 || s.Events != 40 {
				return fmt.Errorf("want 50 requests, 40 ok, 10 errors 503, 40 events")
			}
			return nil
		}, false},
		{[]string{"-scenario", "list", "-n", "20", "-runs", "3"}, 0, func(s summary) error {
			if s.MedianOf != 3 || s.OK != 20 || s.ItemsPerReq != 2 || s.Errors != 0 || s.XCache != 20 || s.CacheHits != 1 {
				return fmt.Errorf("want a median of 3 runs of 20 lists of 2 items, all cache hits")
			}
			return nil
		}, true},
		{[]string{"-scenario", "batch", "-batch", "10", "-n", "5"}, 0, func(s summary) error {
			if s.OK != 5 || s.Events != 50 || s.EPS <= 0 {
				return fmt.Errorf("want 5 batches of 10 events")
			}
			return nil
		}, false},
		{[]string{"-seed", "2500", "-batch", "1000", "-users", "10"}, 0, func(s summary) error {
			if s.Scenario != "seed" || s.Requests != 3 || s.Events != 2500 || s.Stopped != "" {
				return fmt.Errorf("want 2500 events in 3 batches")
			}
			return nil
		}, false},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(append([]string(nil), base...), c.args...), &out, &errOut)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		line := lines[0]
		if c.lastLine {
			line = lines[len(lines)-1]
		}
		var s summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Errorf("%v: output %q: %v (stderr %q)", c.args, out.String(), err, errOut.String())
			continue
		}
		if code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
		if err := c.check(s); err != nil {
			t.Errorf("%v: %v; got %s", c.args, err, line)
		}
	}
}

func TestRefusesNonLoopbackBeforeAnyRequest(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-url", "http://192.0.2.1:8080", "-token", "x"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "loopback") || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and a refusal", code, out.String(), errOut.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "dance"},
		{"-c", "0"},
		{"-batch", "1001"},
		{"-scenario", "seed"},
		{"-scenario", "list", "-seed", "10"},
		{"-n", "0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"-token", "x"}, args...), &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestRefserverSmoke builds the reference server run.sh uses for the
// cached-list rows (./refserver), starts it on the fake activityd, and
// drives it with the list scenario as run.sh does: every request must get
// the page the fake answered. No timing is asserted.
func TestRefserverSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	src, _ := fakeServer(t)
	bin := filepath.Join(t.TempDir(), "refserver")
	if out, err := exec.Command("go", "build", "-o", bin, "./refserver").CombinedOutput(); err != nil {
		t.Fatalf("building ./refserver: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-source", src.URL, "-token", "secret", "-users", "5", "-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// it says where it listens once its pages are loaded
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	var ref string
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("the refserver exited before listening")
		}
		ref = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the refserver did not start")
	}

	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-url", ref, "-scenario", "list", "-users", "5", "-c", "2",
		"-n", "40", "-d", "5s", "-warmup", "0", "-json"}, &out, &errOut)
	var s summary
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &s); err != nil {
		t.Fatalf("output %q: %v (stderr %q)", out.String(), err, errOut.String())
	}
	if code != 0 || s.OK != 40 || s.Errors != 0 || s.ItemsPerReq != 2 || s.CacheHits != 1 {
		t.Errorf("exit %d, %s; want 40 lists of the fake's 2 items, all HIT, no error", code, out.String())
	}
}
