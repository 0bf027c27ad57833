package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponse bounds how much of one response is read (a 1000-event batch
// answer is about 400 KB).
const maxResponse = 16 << 20

// seedSpread is how far back seeded and batched events' occurred_at go.
const seedSpread = 30 * 24 * time.Hour

// actions is the default vocabulary (README: ACTIONS).
var actions = []string{"login", "logout", "upload_file", "created", "updated", "deleted", "viewed"}

// shared is the state of one run that every worker reads.
type shared struct {
	cfg     *config
	client  *http.Client
	auth    []string // the Authorization header value
	base    string   // base URL without a trailing slash
	end     time.Time
	claimed atomic.Int64 // requests begun (bounded by -n)
	errors  atomic.Int64 // errors so far (bounded by -max-errors)
	batches atomic.Int64 // seed batches claimed
	stopMu  sync.Mutex
	stopped string

	hugeOnce sync.Once
	huge     []byte // the headers scenario's request, shared by every worker
}

func (s *shared) stop(why string) {
	s.stopMu.Lock()
	if s.stopped == "" {
		s.stopped = why
	}
	s.stopMu.Unlock()
}

// worker is one concurrent client. Its tallies are merged after the run.
type worker struct {
	*shared
	rng  *rand.Rand
	body []byte
	ats  []time.Time // occurred_at of the events of the batch being built
	resp bytes.Buffer

	lat       []time.Duration
	errs      map[string]int64
	requests  int64
	ok        int64
	events    int64
	lists     int64
	listItems int64
	xcache    int64 // responses with an X-Cache header
	hits      int64 // of which X-Cache: HIT
}

func newShared(cfg *config, client *http.Client, d time.Duration) *shared {
	s := &shared{cfg: cfg, client: client, base: cfg.baseURL.String(), end: time.Now().Add(d)}
	if cfg.token != "" {
		s.auth = []string{"Token " + cfg.token}
	}
	return s
}

// fail counts n errors under key.
func (w *worker) fail(key string, n int64) {
	if w.errs == nil {
		w.errs = map[string]int64{}
	}
	w.errs[key] += n
	w.errors.Add(n)
}

// do sends one request and reads the whole response into w.resp.
func (w *worker) do(ctx context.Context, method, path string, body []byte) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return 0, err
	}
	if w.auth != nil {
		req.Header["Authorization"] = w.auth
	}
	if body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if xc := resp.Header.Get("X-Cache"); xc != "" {
		w.xcache++
		if xc == "HIT" {
			w.hits++
		}
	}
	w.resp.Reset()
	if _, err := w.resp.ReadFrom(io.LimitReader(resp.Body, maxResponse)); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

// check counts a transport error or an unexpected status and reports
// whether the request succeeded.
func (w *worker) check(status int, err error, want int) bool {
	switch {
	case err != nil:
		w.fail("net", 1)
		return false
	case status != want:
		w.fail(strconv.Itoa(status), 1)
		return false
	}
	return true
}

func (w *worker) user() int64 { return 1 + w.rng.Int64N(w.cfg.users) }

// appendCreate appends the body of one POST /v1/events.
func appendCreate(b []byte, user int64) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, user, 10)
	return append(b, `,"action":"login","metadata":{"device":"bench","ip":"10.0.0.1"}}`...)
}

// appendEvent appends one event of a batch: event number i of user, with
// occurred_at at `at` and, when pad > 0, a metadata field "pad" of pad
// bytes.
func appendEvent(b []byte, i, user int64, at time.Time, pad int) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, user, 10)
	b = append(b, `,"action":"`...)
	b = append(b, actions[i%int64(len(actions))]...)
	b = append(b, `","occurred_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","metadata":{"device":"bench","ip":"10.0.0.1","seq":`...)
	b = strconv.AppendInt(b, i, 10)
	if pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, `}}`...)
}

// padField is what a "pad" field adds to an event besides its bytes.
const padField = len(`,"pad":""`)

// appendBatch appends the body of a batch of the events [first,
// first+len(ats)), each event padded by pad bytes (none if pad <= 0).
func appendBatch(b []byte, first int64, ats []time.Time, users func(i int64) int64, pad int) []byte {
	b = append(b, `{"events":[`...)
	for j, at := range ats {
		if j > 0 {
			b = append(b, ',')
		}
		i := first + int64(j)
		b = appendEvent(b, i, users(i), at, pad)
	}
	return append(b, `]}`...)
}

// batchPad is the padding per event that brings a batch body of n events,
// plain bytes long unpadded, to at most limit bytes; 0 when it is already
// within padField bytes per event of it.
func batchPad(plain, limit int64, n int) int {
	if n <= 0 || limit <= plain {
		return 0
	}
	return max(int((limit-plain)/int64(n))-padField, 0)
}

// batchItems counts the items of a batch answer and those stored (201) or
// already stored (200). The answer is Go-encoded JSON
// {"items":[{"index":0,"status":201,"event":{...}},...]} and the load
// tool's own metadata contains neither key, so counting keys is exact; a
// full decode happens only when some item failed.
func batchItems(body []byte) (items, created, existing int) {
	return bytes.Count(body, []byte(`{"index":`)),
		bytes.Count(body, []byte(`"status":201`)),
		bytes.Count(body, []byte(`"status":200`))
}

// checkBatch counts the outcome of a batch of n events answered with body,
// and reports whether every item succeeded.
func (w *worker) checkBatch(body []byte, n int) bool {
	items, created, existing := batchItems(body)
	w.events += int64(created)
	if items == n && created+existing == n {
		return true
	}
	var r struct {
		Items []struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		w.fail("item:unreadable", int64(n))
		return false
	}
	for _, it := range r.Items {
		if it.Status != http.StatusCreated && it.Status != http.StatusOK {
			w.fail("item:"+strconv.Itoa(it.Status), 1)
		}
	}
	if len(r.Items) < n {
		w.fail("item:missing", int64(n-len(r.Items)))
	}
	return false
}

// postBatch sends events [first, first+n) and counts the outcome. With
// -body-bytes the events are padded so that the body is just under it.
func (w *worker) postBatch(ctx context.Context, first int64, n int, users func(i int64) int64) bool {
	now := time.Now()
	w.ats = w.ats[:0]
	for range n {
		w.ats = append(w.ats, now.Add(-time.Duration(w.rng.Int64N(int64(seedSpread)))))
	}
	b := appendBatch(w.body[:0], first, w.ats, users, 0)
	if pad := batchPad(int64(len(b)), w.cfg.bodyBytes, n); pad > 0 {
		b = appendBatch(b[:0], first, w.ats, users, pad)
	}
	w.body = b
	status, err := w.do(ctx, http.MethodPost, "/v1/events/batch", b)
	if !w.check(status, err, http.StatusOK) {
		return false
	}
	return w.checkBatch(w.resp.Bytes(), n)
}

func (w *worker) create(ctx context.Context) bool {
	w.body = appendCreate(w.body[:0], w.user())
	status, err := w.do(ctx, http.MethodPost, "/v1/events", w.body)
	if !w.check(status, err, http.StatusCreated) {
		return false
	}
	w.events++
	return true
}

func (w *worker) list(ctx context.Context) bool {
	u := w.cfg.listUser
	if u == 0 {
		u = w.user()
	}
	path := "/v1/users/" + strconv.FormatInt(u, 10) + "/events?limit=" + strconv.Itoa(w.cfg.limit)
	status, err := w.do(ctx, http.MethodGet, path, nil)
	if !w.check(status, err, http.StatusOK) {
		return false
	}
	w.lists++
	w.listItems += int64(bytes.Count(w.resp.Bytes(), []byte(`"recorded_at":`)))
	return true
}

// hugeRequest is the headers scenario's request: an unauthenticated GET
// /v1/events with one header of size bytes.
func hugeRequest(host string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 256)
	b.WriteString("GET /v1/events HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: activityd-load\r\nX-Padding: ")
	b.WriteString(strings.Repeat("a", size))
	b.WriteString("\r\n\r\n")
	return b.Bytes()
}

// hugeHeader sends the headers scenario's request on a connection of its
// own, written at once while the answer is read (a server that stops
// reading at its header limit answers before the write ends), and returns
// the answer's status.
func (w *worker) hugeHeader(ctx context.Context) (int, error) {
	w.hugeOnce.Do(func() { w.huge = hugeRequest(w.cfg.baseURL.Host, w.cfg.headerBytes) })
	d := net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	conn, err := d.DialContext(ctx, "tcp", w.cfg.baseURL.Host)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(w.cfg.timeout)); err != nil {
		return 0, err
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = conn.Write(w.huge) // fails once the server closes: the answer tells
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
	}
	conn.Close() // ends a write still blocked
	<-wrote
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// step sends one request of the scenario and reports whether it succeeded.
func (w *worker) step(ctx context.Context) bool {
	switch w.cfg.scenario {
	case "headers":
		status, err := w.hugeHeader(ctx)
		return w.check(status, err, http.StatusRequestHeaderFieldsTooLarge)
	case "create":
		return w.create(ctx)
	case "batch":
		first := w.requests * int64(w.cfg.batch)
		return w.postBatch(ctx, first, w.cfg.batch, func(int64) int64 { return w.user() })
	case "list":
		return w.list(ctx)
	case "mixed":
		if w.rng.IntN(10) < 8 {
			return w.list(ctx)
		}
		return w.create(ctx)
	}
	panic("unknown scenario " + w.cfg.scenario)
}

// next decides whether w may begin another request.
func (w *worker) next(ctx context.Context) bool {
	switch {
	case ctx.Err() != nil:
		w.stop("interrupted")
		return false
	case !time.Now().Before(w.end):
		return false
	case w.cfg.maxErrors > 0 && w.errors.Load() >= w.cfg.maxErrors:
		w.stop(fmt.Sprintf("reached -max-errors %d", w.cfg.maxErrors))
		return false
	case w.claimed.Add(1) > w.cfg.maxRequests:
		w.stop(fmt.Sprintf("reached -n %d", w.cfg.maxRequests))
		return false
	}
	return true
}

// drive runs loop on -c workers until each returns, and merges their
// tallies into a summary.
func drive(ctx context.Context, sh *shared, loop func(ctx context.Context, w *worker)) summary {
	cfg := sh.cfg
	ctx, cancel := context.WithDeadline(ctx, sh.end.Add(cfg.timeout))
	defer cancel()
	workers := make([]*worker, cfg.concurrency)
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), cpuTime()
	for i := range workers {
		w := &worker{
			shared: sh,
			rng:    rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i))),
			lat:    make([]time.Duration, 0, 1024),
		}
		workers[i] = w
		wg.Go(func() { loop(ctx, w) })
	}
	wg.Wait()
	s := summary{
		Label:       cfg.label,
		Scenario:    cfg.scenario,
		Concurrency: cfg.concurrency,
		Seconds:     time.Since(start).Seconds(),
		ByStatus:    map[string]int64{},
		Stopped:     sh.stopped,
	}
	var lat []time.Duration
	var lists, items, hits int64
	for _, w := range workers {
		s.XCache += w.xcache
		hits += w.hits
		lat = append(lat, w.lat...)
		s.Requests += w.requests
		s.OK += w.ok
		s.Events += w.events
		lists += w.lists
		items += w.listItems
		for k, v := range w.errs {
			s.ByStatus[k] += v
			s.Errors += v
		}
	}
	if s.XCache > 0 {
		s.CacheHits = float64(hits) / float64(s.XCache)
	}
	if lists > 0 {
		s.ItemsPerReq = float64(items) / float64(lists)
	}
	s.LoadCores = (cpuTime() - cpu0).Seconds() / s.Seconds
	s.fill(lat)
	return s
}

// measure runs the scenario for d (or until -n requests) and summarises it.
func measure(ctx context.Context, cfg *config, client *http.Client, d time.Duration) summary {
	sh := newShared(cfg, client, d)
	return drive(ctx, sh, func(ctx context.Context, w *worker) {
		for w.next(ctx) {
			t0 := time.Now()
			ok := w.step(ctx)
			elapsed := time.Since(t0)
			w.requests++
			if ok {
				w.ok++
				w.lat = append(w.lat, elapsed)
			}
		}
	})
}

// seed stores cfg.seed events in batches of cfg.batch, event i for user
// i%users+1, with cfg.concurrency batches in flight, within cfg.duration.
func seed(ctx context.Context, cfg *config, client *http.Client) summary {
	sh := newShared(cfg, client, cfg.duration)
	total := cfg.seed
	size := int64(cfg.batch)
	nbatches := (total + size - 1) / size
	users := func(i int64) int64 { return i%cfg.users + 1 }
	s := drive(ctx, sh, func(ctx context.Context, w *worker) {
		for w.next(ctx) {
			k := w.batches.Add(1) - 1
			if k >= nbatches {
				return
			}
			first := k * size
			n := int(min(size, total-first))
			t0 := time.Now()
			ok := w.postBatch(ctx, first, n, users)
			elapsed := time.Since(t0)
			w.requests++
			if ok {
				w.ok++
				w.lat = append(w.lat, elapsed)
			}
		}
	})
	if s.Events < total && s.Stopped == "" {
		s.Stopped = fmt.Sprintf("stored %d of %d events within -d %s", s.Events, total, cfg.duration)
	}
	return s
}
