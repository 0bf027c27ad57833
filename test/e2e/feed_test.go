package e2e

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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// Feed drill knob (environment), for `make feed-drill`'s full length.
const feedDrillSecondsVar = "FEED_DRILL_SECONDS" // how long the writers write (default 6; make feed-drill: 60)

// The drill's shape: writers, and how long a reader keeps a connection.
const (
	feedWriters     = 8
	feedMaxBatch    = 50
	feedMinSession  = 200 * time.Millisecond
	feedMaxSession  = 2 * time.Second
	feedDrainWithin = time.Minute // for the readers to reach the head once the writers stopped
)

// The change kinds of the feed.
const (
	kindRecorded = "event.recorded"
	kindStatus   = "event.status_changed"
)

// TestFeedGapFree is issue 17's gap-free drill of the change feed on the
// real binary (SQLite, then PostgreSQL): 8 writers create events (single
// creates with an Idempotency-Key, batches with client ids) and move them
// along the workflow, while long-poll and SSE readers, admin and per-user,
// follow the feed, drop their connection every 0.2–2 s and resume from the
// last position they saw; mid-way the server is SIGKILLed and started
// again on the same data and port. Every reader checks as it goes that its
// positions are dense (admin) or increasing (user), never repeated; at the
// end the whole feed, read from 0, must be dense, equal every admin
// reader's record and each user reader's subsequence, and hold every
// acknowledged write exactly once.
func TestFeedGapFree(t *testing.T) {
	length := time.Duration(envInt(t, feedDrillSecondsVar, 6, 1, 24*3600)) * time.Second
	for _, store := range []struct {
		name string
		env  func(t *testing.T, dir string) []string
	}{
		{"sqlite", func(_ *testing.T, dir string) []string {
			return []string{"DATABASE_URL=sqlite:" + filepath.Join(dir, "feed.db")}
		}},
		{"postgres", func(t *testing.T, _ string) []string {
			url, _ := testenv.PostgresSchema(t)
			return []string{"DATABASE_URL=" + url}
		}},
	} {
		t.Run(store.name, func(t *testing.T) {
			dir := t.TempDir()
			runFeedDrill(t, dir, store.env(t, dir), length)
		})
	}
}

// feedChange is the part of a change the drill checks.
type feedChange struct {
	Position int64  `json:"position"`
	Kind     string `json:"kind"`
	Event    struct {
		ID     string `json:"id"`
		UserID int64  `json:"user_id"`
		Status string `json:"status"`
	} `json:"event"`
}

// feedEntry is a change as a reader recorded it.
type feedEntry struct {
	Position int64
	Kind     string
	ID       string
	User     int64
	Status   string
}

func (c feedChange) entry() feedEntry {
	return feedEntry{c.Position, c.Kind, c.Event.ID, c.Event.UserID, c.Event.Status}
}

// feedPage is a JSON page of GET /v1/changes.
type feedPage struct {
	Items        []feedChange `json:"items"`
	NextPosition *int64       `json:"next_position"`
}

// feedDrill is what the writers and readers of one run share.
type feedDrill struct {
	t      *testing.T
	base   string // the same across restarts: the server comes back on its port
	admin  string
	users  []int64
	tokens map[int64]string // each user's own token
	began  time.Time
	client *http.Client // the writers'
	cancel context.CancelFunc

	stopped  atomic.Bool  // the writers finish their write in progress and stop
	restarts atomic.Int64 // servers started after the first
	retries  atomic.Int64 // writes sent again after no answer (or a 503)
	refused  atomic.Int64 // reader connections that got no answer (the outage)
	busy     atomic.Int64 // 503 answers
	replayed atomic.Int64 // writes applied before the crash, their answer lost: known from the retry's answer

	mu      sync.Mutex
	created map[string]int64 // acknowledged creates: id -> user
	patched []feedEntry      // acknowledged status changes (ID, Status)
}

// since is the drill's clock, for failure messages.
func (d *feedDrill) since() time.Duration { return time.Since(d.began).Round(time.Millisecond) }

// fail reports a broken promise and ends the drill (unless it is ending
// already: then the error is the ending's echo).
func (d *feedDrill) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	d.t.Errorf("at %v (%d restart(s)): %v", d.since(), d.restarts.Load(), err)
	d.cancel()
}

func runFeedDrill(t *testing.T, dir string, storeEnv []string, length time.Duration) {
	const admin = "feed-admin-token-0123456789abcdef"
	env := append(storeEnv, "BOOTSTRAP_ADMIN_TOKEN="+admin, "HTTP_ADDR="+freeAddr(t))
	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	d := &feedDrill{
		t:       t,
		admin:   admin,
		users:   make([]int64, 3+rand.IntN(3)),
		tokens:  map[int64]string{},
		client:  &http.Client{Timeout: 30 * time.Second},
		created: map[string]int64{},
	}
	p := binary.Start(t, dir, env...) // first: it creates the admin token only while there is no token
	d.base = p.Base
	for i := range d.users {
		u := int64(7001 + i)
		d.users[i] = u
		d.tokens[u] = createToken(t, dir, env, "--user", strconv.FormatInt(u, 10), "--scope", "events:read,events:write", "--name", "feed-drill")
	}

	ctx, cancel := context.WithTimeout(context.Background(), length+5*time.Minute)
	d.cancel = cancel
	var writers, readers sync.WaitGroup
	t.Cleanup(func() { cancel(); writers.Wait(); readers.Wait() }) // a Fatal below leaves no goroutine behind
	d.began = time.Now()

	rs := []*feedReader{
		{name: "admin long-poll 1", token: admin},
		{name: "admin long-poll 2", token: admin},
		{name: "admin SSE 1", token: admin, sse: true},
		{name: "admin SSE 2", token: admin, sse: true},
		{name: fmt.Sprintf("user %d SSE", d.users[0]), token: d.tokens[d.users[0]], user: d.users[0], sse: true},
		{name: fmt.Sprintf("user %d long-poll", d.users[1]), token: d.tokens[d.users[1]], user: d.users[1]},
	}
	for _, r := range rs {
		r.target.Store(-1)
		readers.Go(func() { r.run(ctx, d) })
	}
	for i := range feedWriters {
		w := &feedWriter{n: i, d: d}
		writers.Go(func() { w.run(ctx) })
	}

	// Mid-way, a checkpoint of the chains under load, then a crash:
	// SIGKILL, a moment down, the same data and port.
	sleepCtx(ctx, length/2)
	if ctx.Err() != nil {
		t.Fatalf("the drill ended early, before the crash\n%s", tail(p.Logs()))
	}
	binary.Want(t, binary.Call(t, "POST", d.base+"/v1/checkpoints", admin, ""), 201)
	p.Kill(t)
	killedAt := d.since()
	sleepCtx(ctx, 300*time.Millisecond)
	p = binary.Start(t, dir, env...)
	d.restarts.Add(1)
	if p.Base != d.base {
		t.Fatalf("restarted on %s, not on %s", p.Base, d.base)
	}
	backAt := d.since()
	sleepCtx(ctx, length-time.Since(d.began))

	d.stopped.Store(true)
	writers.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the drill ended early\n%s", tail(p.Logs()))
	}

	// The whole feed, read from the start, with plain pages: dense 1..N.
	all := readWholeFeed(t, d.base, admin)
	for i, e := range all {
		if e.Position != int64(i+1) {
			t.Fatalf("the feed read from 0 holds position %d at index %d (after %v): not dense", e.Position, i, all[max(i-1, 0)])
		}
	}
	head := int64(len(all))

	// Every reader drains to the head (its own user's last change).
	for _, r := range rs {
		target := head
		if r.user != 0 {
			target = 0
			for _, e := range all {
				if e.User == r.user {
					target = e.Position
				}
			}
		}
		r.target.Store(target)
	}
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(feedDrainWithin):
		cancel()
		t.Fatalf("the readers did not reach the head (%d) within %v", head, feedDrainWithin)
	}
	if ctx.Err() != nil {
		t.FailNow() // a reader reported what it saw
	}

	for _, r := range rs {
		want := all
		if r.user != 0 {
			want = nil
			for _, e := range all {
				if e.User == r.user {
					want = append(want, e)
				}
			}
		}
		if err := sameEntries(r.seen, want); err != nil {
			t.Errorf("%s: its record differs from the feed read from 0: %v", r.name, err)
		}
	}
	checkAcknowledged(t, d, all)
	checkChains(t, dir, env, d, all)

	var kinds = map[string]int{}
	for _, e := range all {
		kinds[e.Kind]++
	}
	var reconnects int
	for _, r := range rs {
		reconnects += r.reconnects
		t.Logf("%s: %d changes, %d connections", r.name, len(r.seen), r.reconnects)
	}
	t.Logf("%d changes (%d %s, %d %s) from %d acknowledged creates and %d acknowledged status changes of %d users in %v; "+
		"%d reader reconnects (%d unanswered), %d write retries (%d writes applied before the crash, answered on retry), %d answers 503, "+
		"%d restart (SIGKILL at %v, serving again at %v)",
		len(all), kinds[kindRecorded], kindRecorded, kinds[kindStatus], kindStatus, len(d.created), len(d.patched), len(d.users), length,
		reconnects, d.refused.Load(), d.retries.Load(), d.replayed.Load(), d.busy.Load(), d.restarts.Load(), killedAt, backAt)
}

// checkAcknowledged: every acknowledged create has exactly one
// event.recorded, every acknowledged status change its
// event.status_changed, no id is recorded twice, and each event's changes
// follow its workflow (recorded PENDING, then IN_PROGRESS, then DONE).
func checkAcknowledged(t *testing.T, d *feedDrill, all []feedEntry) {
	t.Helper()
	statuses := map[string][]string{} // id -> the statuses its changes left, in feed order
	users := map[string]int64{}
	for _, e := range all {
		switch e.Kind {
		case kindRecorded:
			if len(statuses[e.ID]) > 0 {
				t.Errorf("event %s recorded twice (again at position %d)", e.ID, e.Position)
			}
			users[e.ID] = e.User
		case kindStatus:
			if len(statuses[e.ID]) == 0 {
				t.Errorf("event %s changes status (position %d) before it is recorded", e.ID, e.Position)
			}
		default:
			t.Errorf("position %d: unknown kind %q", e.Position, e.Kind)
		}
		statuses[e.ID] = append(statuses[e.ID], e.Status)
	}
	workflow := []string{"PENDING", "IN_PROGRESS", "DONE"}
	for id, ss := range statuses {
		if len(ss) > len(workflow) || strings.Join(ss, " ") != strings.Join(workflow[:len(ss)], " ") {
			t.Errorf("event %s: its changes leave statuses %v, not the workflow's order", id, ss)
		}
	}
	for id, u := range d.created {
		if got, ok := users[id]; !ok {
			t.Errorf("acknowledged create %s (user %d) has no %s in the feed", id, u, kindRecorded)
		} else if got != u {
			t.Errorf("acknowledged create %s: recorded for user %d, want %d", id, got, u)
		}
	}
	for _, p := range d.patched {
		if !containsStatus(statuses[p.ID][1:], p.Status) {
			t.Errorf("acknowledged status change of %s to %s is not in the feed (its statuses: %v)", p.ID, p.Status, statuses[p.ID])
		}
	}
}

func containsStatus(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// sameEntries reports the first difference between got and want.
func sameEntries(got, want []feedEntry) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("entry %d is %+v, want %+v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d entries, want %d", len(got), len(want))
	}
	return nil
}

// readWholeFeed reads the feed from position 0 with plain pages (no wait)
// until an empty one.
func readWholeFeed(t *testing.T, base, token string) []feedEntry {
	t.Helper()
	var (
		all   []feedEntry
		after int64
	)
	for {
		r := binary.Call(t, "GET", fmt.Sprintf("%s/v1/changes?after=%d&limit=1000", base, after), token, "")
		binary.Want(t, r, 200)
		var page feedPage
		if err := json.Unmarshal([]byte(r.Raw), &page); err != nil {
			t.Fatalf("a page of the feed: %v: %s", err, r.Raw)
		}
		if len(page.Items) == 0 {
			return all
		}
		for _, c := range page.Items {
			all = append(all, c.entry())
		}
		after = page.Items[len(page.Items)-1].Position
	}
}

// feedReader follows the feed as one client: by long poll or SSE, as an
// admin (every user's changes: dense) or as one user.
type feedReader struct {
	name  string
	token string
	user  int64 // 0: an admin reader
	sse   bool

	// The reader's own (its goroutine's; read by the test once it ended).
	seen       []feedEntry
	last       int64
	reconnects int

	target atomic.Int64 // the position to drain to; -1 until the writers stopped
}

// drained reports whether the reader has reached its target.
func (r *feedReader) drained() bool {
	t := r.target.Load()
	return t >= 0 && r.last >= t
}

// run follows the feed until drained: connections that last 0.2–2 s, each
// resuming after the last position seen.
func (r *feedReader) run(ctx context.Context, d *feedDrill) {
	for ctx.Err() == nil && !r.drained() {
		life := feedMinSession + rand.N(feedMaxSession-feedMinSession)
		sctx, cancel := context.WithTimeout(ctx, life)
		tr := &http.Transport{}
		c := &http.Client{Transport: tr}
		var err error
		if r.sse {
			err = r.stream(sctx, c, d)
		} else {
			err = r.poll(sctx, c, d)
		}
		cancel()
		tr.CloseIdleConnections()
		r.reconnects++
		if err != nil {
			d.fail(ctx, fmt.Errorf("%s (after position %d): %w", r.name, r.last, err))
			return
		}
	}
}

// take checks c against what the reader saw before and records it.
func (r *feedReader) take(c feedChange) error {
	switch {
	case r.user == 0 && c.Position != r.last+1:
		return fmt.Errorf("position %d follows %d: the admin feed must be dense (a gap, a duplicate or a reorder)", c.Position, r.last)
	case c.Position <= r.last:
		return fmt.Errorf("position %d follows %d: a duplicate or a reorder", c.Position, r.last)
	case r.user != 0 && c.Event.UserID != r.user:
		return fmt.Errorf("position %d is user %d's change", c.Position, c.Event.UserID)
	case c.Kind != kindRecorded && c.Kind != kindStatus:
		return fmt.Errorf("position %d: unknown kind %q", c.Position, c.Kind)
	case c.Event.ID == "" || c.Event.Status == "":
		return fmt.Errorf("position %d: no event id or status: %+v", c.Position, c)
	}
	r.seen = append(r.seen, c.entry())
	r.last = c.Position
	return nil
}

// unanswered notes a request the server did not answer; unless the
// connection's life is over (ctx), the server is down: pause a little.
func (d *feedDrill) unanswered(ctx context.Context) {
	if ctx.Err() == nil {
		d.refused.Add(1)
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// poll long-polls (wait=2s, a random limit) until ctx ends the connection.
func (r *feedReader) poll(ctx context.Context, c *http.Client, d *feedDrill) error {
	for !r.drained() {
		url := fmt.Sprintf("%s/v1/changes?after=%d&limit=%d&wait=2s", d.base, r.last, 1+rand.IntN(500))
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Token "+r.token)
		resp, err := c.Do(req)
		if err != nil {
			d.unanswered(ctx)
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			d.unanswered(ctx) // cut mid-answer: nothing of it counts
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable:
			d.busy.Add(1)
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, raw)
		}
		var page feedPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("GET %s: %v: %s", url, err, raw)
		}
		after := r.last
		for _, ch := range page.Items {
			if err := r.take(ch); err != nil {
				return err
			}
		}
		if want := r.last; page.NextPosition == nil || *page.NextPosition != want {
			return fmt.Errorf("GET %s (after %d, %d items): next_position %v, want %d", url, after, len(page.Items), page.NextPosition, want)
		}
	}
	return nil
}

// stream reads Server-Sent Events, resuming with Last-Event-ID, until ctx
// ends the connection, the server drops it, or the reader is drained.
func (r *feedReader) stream(ctx context.Context, c *http.Client, d *feedDrill) error {
	req, err := http.NewRequestWithContext(ctx, "GET", d.base+"/v1/changes", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Token "+r.token)
	req.Header.Set("Accept", "text/event-stream")
	if r.last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(r.last, 10))
	}
	resp, err := c.Do(req)
	if err != nil {
		d.unanswered(ctx)
		return nil
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		d.busy.Add(1)
		sleepCtx(ctx, 50*time.Millisecond)
		return nil
	case resp.StatusCode != http.StatusOK:
		raw, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("SSE after %d: %d %s", r.last, resp.StatusCode, raw)
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		return fmt.Errorf("SSE after %d: Content-Type %q", r.last, resp.Header.Get("Content-Type"))
	}
	// Whole lines only: bufio.Scanner would hand over the partial line a
	// cut connection leaves, which is no line at all.
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var id, data string
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil // cut, by ctx or by the server; a partial event was not taken
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case first:
			if line != "retry: 1000" {
				return fmt.Errorf("SSE after %d: the stream begins with %q, want retry: 1000", r.last, line)
			}
		case line == "": // the end of an event
			if data == "" {
				id = ""
				continue
			}
			var ch feedChange
			if err := json.Unmarshal([]byte(data), &ch); err != nil {
				return fmt.Errorf("SSE data %q: %v", data, err)
			}
			if id != strconv.FormatInt(ch.Position, 10) {
				return fmt.Errorf("SSE event id %q for position %d", id, ch.Position)
			}
			if err := r.take(ch); err != nil {
				return err
			}
			id, data = "", ""
			if r.drained() {
				return nil
			}
		case strings.HasPrefix(line, ":"): // a comment: keep-alive
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			if data != "" {
				return fmt.Errorf("SSE: an event of two data lines (a raw newline in the JSON): %q", line)
			}
			data = line[len("data: "):]
		case strings.HasPrefix(line, "retry: "):
		default:
			return fmt.Errorf("SSE: an unexpected line %q", line)
		}
	}
}

// feedWriter writes as one client: creates, batches, and status changes
// of the events it created.
type feedWriter struct {
	n    int
	d    *feedDrill
	ops  int
	mine []*ownEvent // acknowledged creates not DONE yet
}

// ownEvent is an event a writer created, and its status as last known.
type ownEvent struct {
	id     string
	user   int64
	status string
}

var feedActions = []string{"login", "logout", "upload_file", "created", "updated", "deleted", "viewed"}

func (w *feedWriter) run(ctx context.Context) {
	for ctx.Err() == nil && !w.d.stopped.Load() {
		w.ops++
		var err error
		switch k := rand.IntN(10); { // a quarter creates, a quarter batches, half status changes
		case k < 3 || k >= 5 && len(w.mine) == 0:
			err = w.single(ctx)
		case k < 5:
			err = w.batch(ctx)
		default:
			err = w.patch(ctx)
		}
		if err != nil {
			w.d.fail(ctx, fmt.Errorf("writer %d: %w", w.n, err))
			return
		}
	}
}

// single creates one event with an Idempotency-Key, as an admin naming
// the user or with the user's own token.
func (w *feedWriter) single(ctx context.Context) error {
	d := w.d
	u := d.users[rand.IntN(len(d.users))]
	token, body := d.admin, fmt.Sprintf(`{"user_id":%d,"action":%q,"metadata":{"writer":%d,"op":%d}}`, u, feedActions[rand.IntN(len(feedActions))], w.n, w.ops)
	if rand.IntN(2) == 0 {
		token, body = d.tokens[u], fmt.Sprintf(`{"action":%q,"metadata":{"writer":%d,"op":%d}}`, feedActions[rand.IntN(len(feedActions))], w.n, w.ops)
	}
	key := fmt.Sprintf("feed-drill-%d-%d-%x", w.n, w.ops, rand.Uint64())
	status, raw, retried, err := d.send(ctx, "POST", "/v1/events", token, key, body)
	if err != nil {
		return err
	}
	if retried && status == http.StatusOK {
		d.replayed.Add(1)
	}
	if status != http.StatusCreated && status != http.StatusOK { // 200: a retry's answer
		return fmt.Errorf("POST /v1/events: %d %s", status, raw)
	}
	var ev struct {
		ID     string `json:"id"`
		UserID int64  `json:"user_id"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil || ev.ID == "" || ev.UserID != u {
		return fmt.Errorf("POST /v1/events for user %d: %d %s", u, status, raw)
	}
	w.acknowledge(ev.ID, u)
	return nil
}

// batch creates 1..50 events with client ids in one request.
func (w *feedWriter) batch(ctx context.Context) error {
	d := w.d
	n := 1 + rand.IntN(feedMaxBatch)
	ids, users := make([]string, n), make([]int64, n)
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		ids[i], users[i] = clientID(), d.users[rand.IntN(len(d.users))]
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"user_id":%d,"action":%q,"metadata":{"writer":%d,"op":%d,"i":%d}}`,
			ids[i], users[i], feedActions[rand.IntN(len(feedActions))], w.n, w.ops, i)
	}
	b.WriteString(`]}`)
	status, raw, _, err := d.send(ctx, "POST", "/v1/events/batch", d.admin, "", b.String())
	if err != nil {
		return err
	}
	var out struct {
		Items []struct {
			Index  int `json:"index"`
			Status int `json:"status"`
			Event  struct {
				ID     string `json:"id"`
				UserID int64  `json:"user_id"`
			} `json:"event"`
		} `json:"items"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &out) != nil || len(out.Items) != n {
		return fmt.Errorf("POST /v1/events/batch of %d: %d %s", n, status, raw)
	}
	for i, it := range out.Items {
		if it.Index != i || (it.Status != http.StatusCreated && it.Status != http.StatusOK) || it.Event.ID != ids[i] || it.Event.UserID != users[i] {
			return fmt.Errorf("POST /v1/events/batch: item %d (id %s, user %d) answered %+v", i, ids[i], users[i], it)
		}
		if it.Status == http.StatusOK {
			d.replayed.Add(1)
		}
		w.acknowledge(ids[i], users[i])
	}
	return nil
}

// patch moves one of the writer's events to its next status.
func (w *feedWriter) patch(ctx context.Context) error {
	d := w.d
	i := rand.IntN(len(w.mine))
	e := w.mine[i]
	next := map[string]string{"PENDING": "IN_PROGRESS", "IN_PROGRESS": "DONE"}[e.status]
	token := d.admin
	if rand.IntN(2) == 0 {
		token = d.tokens[e.user]
	}
	status, raw, retried, err := d.send(ctx, "PATCH", "/v1/events/"+e.id, token, "", `{"status":"`+next+`"}`)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusOK:
		d.mu.Lock()
		d.patched = append(d.patched, feedEntry{ID: e.id, Status: next})
		d.mu.Unlock()
		e.status = next
	case status == http.StatusConflict && retried:
		// An attempt before the crash may have been applied, unanswered:
		// learn the status (that change is in the feed, just not acknowledged).
		status, raw, _, err = d.send(ctx, "GET", "/v1/events/"+e.id, d.admin, "", "")
		if err != nil {
			return err
		}
		var ev struct{ Status string }
		if status != http.StatusOK || json.Unmarshal(raw, &ev) != nil || ev.Status == "" {
			return fmt.Errorf("GET /v1/events/%s: %d %s", e.id, status, raw)
		}
		if ev.Status == next {
			d.replayed.Add(1)
		}
		e.status = ev.Status
	default:
		return fmt.Errorf("PATCH /v1/events/%s to %s: %d %s", e.id, next, status, raw)
	}
	if e.status == "DONE" {
		w.mine[i] = w.mine[len(w.mine)-1]
		w.mine = w.mine[:len(w.mine)-1]
	}
	return nil
}

// acknowledge notes a create answered 2xx.
func (w *feedWriter) acknowledge(id string, user int64) {
	w.d.mu.Lock()
	w.d.created[id] = user
	w.d.mu.Unlock()
	w.mine = append(w.mine, &ownEvent{id: id, user: user, status: "PENDING"})
}

// send sends one request, and the very same again whenever it gets no
// answer or a 503 (the server killed, or starting again), until it gets
// another answer; retried reports whether it had to. A 5xx other than 503
// is an error: the feed drill expects none.
func (d *feedDrill) send(ctx context.Context, method, path, token, key, body string) (status int, raw []byte, retried bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, nil, retried, err
		}
		req, err := http.NewRequestWithContext(ctx, method, d.base+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, retried, err
		}
		req.Header.Set("Authorization", "Token "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := d.client.Do(req)
		if err == nil {
			raw, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
			case resp.StatusCode == http.StatusServiceUnavailable:
				d.busy.Add(1)
			case resp.StatusCode >= 500:
				return resp.StatusCode, raw, retried, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
			default:
				return resp.StatusCode, raw, retried, nil
			}
		}
		retried = true
		d.retries.Add(1)
		sleepCtx(ctx, 20*time.Millisecond+rand.N(30*time.Millisecond))
	}
}

// clientID returns a random UUID for a batch item: half of the time a
// version 7 made as the server makes them (the millisecond, then the
// microsecond in rand_a), else a version 4.
func clientID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	if rand.IntN(2) == 0 {
		now := time.Now()
		ms := uint64(now.UnixMilli())
		for i := range 6 {
			b[i] = byte(ms >> (8 * (5 - i)))
		}
		us := uint16(now.Nanosecond() / 1000 % 1000)
		b[6], b[7] = 0x70|byte(us>>8), byte(us)
	} else {
		b[6] = b[6]&0x0f | 0x40
	}
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// freeAddr returns a loopback address whose port was free a moment ago:
// a server given it comes back on it after a crash.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sleepCtx sleeps d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// checkChains is issue 18's check of the drill: the hash chains that
// concurrent writers (single creates, batches, status changes of the same
// users) extended through a SIGKILL verify — against the checkpoint signed
// under load before the crash and against a new one — from the command
// line and from each user's integrity endpoint, and an event's inclusion
// proof verifies offline with the published key.
func checkChains(t *testing.T, dir string, env []string, d *feedDrill, all []feedEntry) {
	t.Helper()
	out, errOut, code := binary.Run(t, dir, env, "verify", "--progress=off")
	var res struct {
		OK          bool            `json:"ok"`
		Checked     int64           `json:"checked"`
		Checkpoint  int64           `json:"checkpoint"`
		FirstBroken json.RawMessage `json:"first_broken"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.OK || res.Checked != int64(len(all)) || res.Checkpoint == 0 {
		t.Fatalf("activityd verify after the drill: exit %d, %s (want ok over %d changes, against the checkpoint signed under load)\n%s", code, out, len(all), errOut)
	}
	binary.Want(t, binary.Call(t, "POST", d.base+"/v1/checkpoints", d.admin, ""), 201)
	m := binary.Call(t, "GET", d.base+"/metrics", "", "")
	if age, ok := sample(m.Raw, "activityd_checkpoint_age_seconds"); !ok || age < 0 || age > 60 {
		t.Errorf("activityd_checkpoint_age_seconds = %v (exported: %v) right after a checkpoint, want 0..60", age, ok)
	}
	for _, u := range d.users {
		r := binary.Call(t, "GET", fmt.Sprintf("%s/v1/users/%d/integrity", d.base, u), d.tokens[u], "")
		binary.Want(t, r, 200)
		if r.Body["ok"] != true || r.Body["checkpoint"] != float64(len(all)) {
			t.Fatalf("user %d's integrity: %s", u, r.Raw)
		}
	}
	var id string
	for _, e := range all {
		if e.Kind == kindRecorded {
			id = e.ID
		}
	}
	r := binary.Call(t, "GET", d.base+"/v1/events/"+id+"/proof", d.admin, "")
	binary.Want(t, r, 200)
	k := binary.Call(t, "GET", d.base+"/.well-known/activityd/checkpoint-key", "", "")
	binary.Want(t, k, 200)
	pem, _ := k.Body["pem"].(string)
	if err := os.WriteFile(filepath.Join(dir, "proof.json"), []byte(r.Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := binary.Run(t, dir, nil, "verify-proof", "--key", "key.pem", "proof.json"); code != 0 || !strings.Contains(out, "proof verifies") {
		t.Fatalf("verify-proof: exit %d: %s%s", code, out, errOut)
	}
}
