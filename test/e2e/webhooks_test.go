package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// The webhook drill's shape.
const (
	hookWriteFor    = 5 * time.Second        // how long the writers write while the receiver flaps
	hookWriterCount = 3                      // concurrent writers
	hookTimeout     = 500 * time.Millisecond // WEBHOOK_TIMEOUT
	hookMaxStreak   = 2                      // failures in a row the flapping receiver answers one subscription at most
	hookDrainWithin = 40 * time.Second       // for every subscription to reach the feed's head once the writers stopped
	hookAdmin       = "hooks-admin-token-0123456789abcdef"
)

// hookLoopbackEnv lets the subscriptions target the test's receiver
// (http, on loopback) and polls the feed often.
var hookLoopbackEnv = []string{
	"WEBHOOK_ALLOW=127.0.0.1/32",
	"WEBHOOK_ALLOW_HTTP=true",
	"WEBHOOK_TIMEOUT=" + hookTimeout.String(),
	"FEED_POLL=100ms",
	"BOOTSTRAP_ADMIN_TOKEN=" + hookAdmin,
}

// TestWebhooksEndToEnd drives webhooks through the real binary: deliveries
// of the change feed to a flapping receiver that checks every signature
// with the official Standard Webhooks library, in process on SQLite and
// over asynq (serve and a worker) on PostgreSQL and Redis, with a secret
// rotated mid-way; targets refused as server-side request forgery; and a
// subscription paused by failures, resumed and replayed.
func TestWebhooksEndToEnd(t *testing.T) {
	t.Run("sqlite-inprocess", func(t *testing.T) {
		dir := t.TempDir()
		runWebhookDrill(t, dir, []string{"DATABASE_URL=sqlite:" + filepath.Join(dir, "hooks.db")}, "")
	})
	t.Run("postgres-redis", func(t *testing.T) {
		dbURL, _ := testenv.PostgresSchema(t)
		// A private Redis: asynq's keys have no prefix to keep tests apart.
		redisAddr, _, _ := testenv.StartRedis(t)
		runWebhookDrill(t, t.TempDir(), []string{"DATABASE_URL=" + dbURL, "REDIS_URL=redis://" + redisAddr + "/0"}, redisAddr)
	})
	t.Run("ssrf", testWebhookSSRF)
	t.Run("pause-resume-replay", testWebhookPauseResumeReplay)
}

// hookSub is one subscription of the drill: its filter, and which of the
// feed's changes it must receive.
type hookSub struct {
	name  string // the receiver's path: /hooks/<name>
	body  string // POST /v1/webhooks, without url
	match func(c hookChange) bool
	id    string
	from  int64 // its position when created
}

// runWebhookDrill starts serve on storeEnv (and, with redisAddr, one
// worker), subscribes three endpoints of a flapping receiver, writes for
// hookWriteFor with a secret rotated half-way, waits until every
// subscription has reached the feed's head, and checks what the receiver
// accepted against the feed.
func runWebhookDrill(t *testing.T, dir string, storeEnv []string, redisAddr string) {
	began := time.Now()
	env := append(slices.Clip(storeEnv), hookLoopbackEnv...)
	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	srv := binary.Start(t, dir, env...)
	var worker *binary.Proc
	if redisAddr != "" {
		worker = binary.Worker.Start(t, dir, env...)
	}
	rc := newHookReceiver(hookFlaky)
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)

	// A little history before subscribing: the subscription from 0 gets
	// it, those from "now" do not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &hookWriters{base: srv.Base, client: &http.Client{Timeout: 30 * time.Second}}
	first := &hookWriter{}
	for range 4 {
		if err := w.step(ctx, first); err != nil {
			t.Fatal(err)
		}
	}
	head := lastPosition(readHookFeed(t, srv.Base))
	if head == 0 {
		t.Fatal("the writes before subscribing made no change")
	}

	subs := []*hookSub{
		{name: "all", body: `"from":0`, match: func(hookChange) bool { return true }},
		{name: "login", body: `"actions":["login"],"from":"now"`, match: func(c hookChange) bool { return c.Event.Action == "login" }},
		{name: "status", body: `"kinds":["event.status_changed"]`, match: func(c hookChange) bool { return c.Kind == kindStatus }},
	}
	for _, s := range subs {
		// Created paused, so that nothing is sent before the receiver
		// knows the secret; then resumed.
		r := binary.Call(t, "POST", srv.Base+"/v1/webhooks", hookAdmin,
			fmt.Sprintf(`{"url":%q,%s,"paused":true}`, hs.URL+"/hooks/"+s.name, s.body))
		binary.Want(t, r, 201)
		s.id, _ = r.Body["id"].(string)
		secret, _ := r.Body["secret"].(string)
		s.from = int64(num(r.Body["position"]))
		wantFrom := head
		if s.name == "all" {
			wantFrom = 0
		}
		if !strings.HasPrefix(s.id, "wh_") || !strings.HasPrefix(secret, "whsec_") || s.from != wantFrom ||
			r.Header.Get("Location") != "/v1/webhooks/"+s.id {
			t.Fatalf("create %s: position %d (want %d), Location %q: %s", s.name, s.from, wantFrom, r.Header.Get("Location"), r.Raw)
		}
		rc.add(s.name, s.id, secret)
	}
	for _, s := range subs {
		r := binary.Call(t, "PATCH", srv.Base+"/v1/webhooks/"+s.id, hookAdmin, `{"paused":false}`)
		binary.Want(t, r, 200)
		if r.Body["paused"] != false {
			t.Fatalf("resume %s: %s", s.name, r.Raw)
		}
	}
	if r := binary.Call(t, "GET", srv.Base+"/v1/webhooks", hookAdmin, ""); r.Status != 200 || len(items(r)) != len(subs) {
		t.Fatalf("GET /v1/webhooks: %d %s", r.Status, r.Raw)
	}

	// The writers write while the receiver flaps; half-way, the secret of
	// "all" is rotated and the receiver learns the new one only.
	writing := time.Now()
	var wg sync.WaitGroup
	for i := range hookWriterCount {
		wg.Go(func() { w.run(ctx, i) })
	}
	t.Cleanup(func() { w.stop.Store(true); cancel(); wg.Wait() }) // a Fatal below leaves no goroutine behind
	sleepCtx(ctx, hookWriteFor/2)
	r := binary.Call(t, "POST", srv.Base+"/v1/webhooks/"+subs[0].id+"/rotate", hookAdmin, "")
	binary.Want(t, r, 200)
	fresh, _ := r.Body["secret"].(string)
	secrets, _ := r.Body["secrets"].([]any)
	if !strings.HasPrefix(fresh, "whsec_") || len(secrets) != 2 {
		t.Fatalf("rotate: %s", r.Raw)
	}
	if old, _ := secrets[1].(map[string]any); old["expires_at"] == nil {
		t.Fatalf("rotate: the old secret does not expire: %s", r.Raw)
	}
	rc.rotate(subs[0].name, fresh)
	sleepCtx(ctx, hookWriteFor-time.Since(writing))
	w.stop.Store(true)
	wg.Wait()
	if err := w.err(); err != nil {
		t.Fatal(err)
	}
	rc.setMode(hookSettling) // the receiver recovers: what is left drains

	feed := readHookFeed(t, srv.Base)
	head = lastPosition(feed)
	deadline := time.Now().Add(hookDrainWithin)
	for _, s := range subs {
		for {
			st := getHook(t, srv.Base, s.id)
			if st.Position >= head {
				if st.Position != head || st.Pending != nil || st.Failures != 0 || st.Paused {
					t.Errorf("%s at the head: %+v, want position %d, nothing pending, no failures, not paused", s.name, st, head)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach the feed's head %d within %v: %+v\n%s\nserve:\n%s", s.name, head, hookDrainWithin,
					st, rc.summary(), tail(srv.Logs()))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	for _, s := range subs {
		checkHookSub(t, srv.Base, rc, s, feed)
	}
	rotated := rc.endpoint(subs[0].name)
	if rotated.afterRotation == 0 {
		t.Errorf("no message was accepted with the rotated secret: %s", rc.summary())
	}
	if redisAddr != "" {
		insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: redisAddr})
		defer insp.Close()
		q, err := insp.GetQueueInfo("webhooks")
		if err != nil {
			t.Fatal(err)
		}
		if q.ProcessedTotal == 0 || q.FailedTotal == 0 {
			t.Errorf("queue webhooks: processed %d, failed %d; want the worker to have run delivery tasks, some failed", q.ProcessedTotal, q.FailedTotal)
		}
		t.Logf("queue webhooks: %d tasks processed, %d failed", q.ProcessedTotal, q.FailedTotal)
		if err := worker.Stop(t); err != nil {
			t.Errorf("worker: SIGTERM exit: %v\n%s", err, tail(worker.Logs()))
		}
	}
	if err := srv.Stop(t); err != nil {
		t.Errorf("serve: SIGTERM exit: %v\n%s", err, tail(srv.Logs()))
	}
	t.Logf("%d changes, %d write operations; %s; %v in all", head, w.ops.Load(), rc.summary(), time.Since(began).Round(100*time.Millisecond))
}

// checkHookSub checks what the receiver accepted for s against the feed:
// every change s's filter selects after s.from, accepted at least once and
// first in feed order (a change again only as a re-delivery of one already
// accepted), nothing else; and the delivery log agrees with what the
// receiver answered.
func checkHookSub(t *testing.T, base string, rc *hookReceiver, s *hookSub, feed []hookChange) {
	t.Helper()
	byPos := map[int64]hookChange{}
	var want []int64
	for _, c := range feed {
		byPos[c.Position] = c
		if c.Position > s.from && s.match(c) {
			want = append(want, c.Position)
		}
	}
	ep := rc.endpoint(s.name)
	if len(ep.problems) > 0 {
		t.Errorf("%s: the receiver saw:\n%s", s.name, strings.Join(ep.problems, "\n"))
	}
	var (
		got   []int64
		last  int64
		taken = map[int64]bool{}
		dups  int
	)
	for _, m := range ep.accepted {
		for _, c := range m.Data.Changes {
			f, ok := byPos[c.Position]
			switch {
			case !ok:
				t.Fatalf("%s: message %s carries position %d, not in the feed", s.name, m.ID, c.Position)
			case c.Position <= s.from || !s.match(f):
				t.Fatalf("%s: message %s carries position %d (%s of a %s event), outside its filter", s.name, m.ID, c.Position, f.Kind, f.Event.Action)
			case c.Kind != f.Kind || c.Event.ID != f.Event.ID || c.Event.Action != f.Event.Action:
				t.Fatalf("%s: message %s: position %d is %+v, the feed says %+v", s.name, m.ID, c.Position, c, f)
			case c.Position <= last:
				if !taken[c.Position] {
					t.Fatalf("%s: message %s: position %d, never accepted before, after %d: out of order", s.name, m.ID, c.Position, last)
				}
				dups++
				continue
			}
			taken[c.Position] = true
			last = c.Position
			got = append(got, c.Position)
		}
	}
	if !slices.Equal(got, want) {
		missing := 0
		for _, p := range want {
			if !taken[p] {
				missing++
			}
		}
		t.Fatalf("%s: accepted %d distinct changes, want %d (%d missing) although its position reached the head", s.name, len(got), len(want), missing)
	}
	if len(want) == 0 {
		t.Fatalf("%s: the feed holds no change for it: the drill tested nothing", s.name)
	}

	// The delivery log: failures and successes, as the receiver answered.
	log := hookDeliveries(t, base, s.id)
	acceptedIDs := map[string]bool{}
	for _, m := range ep.accepted {
		acceptedIDs[m.ID] = true
	}
	var ok, failed, code500, code401, noAnswer int
	for _, d := range log {
		switch {
		case d.OK:
			ok++
			if !acceptedIDs[d.MessageID] {
				t.Errorf("%s: the log has message %s delivered, the receiver never accepted it", s.name, d.MessageID)
			}
		default:
			failed++
		}
		switch {
		case d.StatusCode == nil:
			noAnswer++
		case *d.StatusCode == 500:
			code500++
		case *d.StatusCode == 401:
			code401++
		}
	}
	if ok == 0 || failed == 0 {
		t.Errorf("%s: delivery log of %d attempts: %d delivered, %d failed; want both", s.name, len(log), ok, failed)
	}
	// The whole log (under 1000 attempts) agrees with the receiver: each
	// failure it answered is logged as one (a 500 the sender waited too
	// long for, on a loaded machine, as unanswered), and none it did not.
	if len(log) < 1000 && (code500 > ep.answered500 || code401 > ep.refused || noAnswer < ep.timeouts ||
		code500+noAnswer < ep.answered500+ep.timeouts || failed < ep.answered500+ep.refused+ep.timeouts) {
		t.Errorf("%s: the log holds %d failed attempts: %d answered 500, %d answered 401, %d unanswered; the receiver answered %d 500s, %d 401s, %d too late",
			s.name, failed, code500, code401, noAnswer, ep.answered500, ep.refused, ep.timeouts)
	}
	// A failed message is retried after its backoff (a second at least),
	// not at once.
	shortest, longest := ep.retryGaps()
	if shortest < 800*time.Millisecond {
		t.Errorf("%s: a retry came %v after a failed call, want the backoff's second at least", s.name, shortest)
	}
	t.Logf("%s: %d changes accepted (%d again), %d messages accepted, log: %d delivered, %d failed (%d × 500, %d × 401, %d unanswered); retries %v to %v after a failure",
		s.name, len(got), dups, len(ep.accepted), ok, failed, code500, code401, noAnswer, shortest.Round(time.Millisecond), longest.Round(time.Millisecond))
}

// testWebhookSSRF: without WEBHOOK_ALLOW, subscribing a loopback, private
// or link-local target is refused, naming url, and nothing is created;
// WEBHOOK_ALLOW_HTTP alone does not open loopback.
func testWebhookSSRF(t *testing.T) {
	var hit atomic.Int64
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hit.Add(1) }))
	t.Cleanup(rs.Close)
	refused := func(t *testing.T, base, url string) {
		t.Helper()
		r := binary.Call(t, "POST", base+"/v1/webhooks", hookAdmin, fmt.Sprintf(`{"url":%q,"from":0}`, url))
		if r.Status != 400 && r.Status != 422 {
			t.Errorf("subscribing %s: %d %s, want 400 or 422", url, r.Status, r.Raw)
			return
		}
		var p struct{ Errors []struct{ Field string } }
		if err := json.Unmarshal([]byte(r.Raw), &p); err != nil || len(p.Errors) == 0 || p.Errors[0].Field != "url" {
			t.Errorf("subscribing %s: %d %s, want the problem to name url", url, r.Status, r.Raw)
		}
	}
	empty := func(t *testing.T, base string) {
		t.Helper()
		r := binary.Call(t, "GET", base+"/v1/webhooks", hookAdmin, "")
		if r.Status != 200 || len(items(r)) != 0 || !strings.Contains(r.Raw, `"items":[]`) {
			t.Errorf("GET /v1/webhooks after refusals: %d %s, want no subscription", r.Status, r.Raw)
		}
	}
	base := []string{"DATABASE_URL=memory:", "BOOTSTRAP_ADMIN_TOKEN=" + hookAdmin}

	p := binary.Start(t, t.TempDir(), base...)
	// An event, so that a subscription that slipped through would be sent it.
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", hookAdmin, `{"user_id":1,"action":"login"}`), 201)
	for _, u := range []string{rs.URL, "https://127.0.0.1", "https://10.0.0.1", "https://169.254.169.254/latest/meta-data",
		"https://[::1]", "https://localhost", "https://127.0.0.1:" + strings.TrimPrefix(rs.URL, "http://127.0.0.1:")} {
		refused(t, p.Base, u)
	}
	empty(t, p.Base)
	// A public name is accepted (names are checked when dialled): the
	// refusals above are the guard's, not a refusal of everything.
	r := binary.Call(t, "POST", p.Base+"/v1/webhooks", hookAdmin, `{"url":"https://hooks.example.com/activity","paused":true}`)
	binary.Want(t, r, 201)
	id, _ := r.Body["id"].(string)
	binary.Want(t, binary.Call(t, "DELETE", p.Base+"/v1/webhooks/"+id, hookAdmin, ""), 204)
	empty(t, p.Base)

	p2 := binary.Start(t, t.TempDir(), append(base, "WEBHOOK_ALLOW_HTTP=true")...)
	binary.Want(t, binary.Call(t, "POST", p2.Base+"/v1/events", hookAdmin, `{"user_id":1,"action":"login"}`), 201)
	refused(t, p2.Base, rs.URL)
	refused(t, p2.Base, strings.Replace(rs.URL, "127.0.0.1", "localhost", 1))
	empty(t, p2.Base)
	time.Sleep(600 * time.Millisecond) // past a FEED_POLL (500ms): a delivery would have been tried
	if n := hit.Load(); n != 0 {
		t.Errorf("the loopback receiver was called %d times", n)
	}
}

// testWebhookPauseResumeReplay: a receiver that answers 503 pauses its
// subscription after WEBHOOK_MAX_FAILURES attempts of one message, each
// logged under the same message id; nothing is sent while paused; resumed,
// the same message is delivered, then what came meanwhile; replayed from
// 0, everything again.
func testWebhookPauseResumeReplay(t *testing.T) {
	dir := t.TempDir()
	env := append([]string{"DATABASE_URL=sqlite:" + filepath.Join(dir, "hooks.db"), "WEBHOOK_MAX_FAILURES=3"}, hookLoopbackEnv...)
	p := binary.Start(t, dir, env...)
	rc := newHookReceiver(hookDown)
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)

	for _, a := range []string{"login", "upload_file", "logout"} {
		binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", hookAdmin, fmt.Sprintf(`{"user_id":3,"action":%q}`, a)), 201)
	}
	r := binary.Call(t, "POST", p.Base+"/v1/webhooks", hookAdmin, fmt.Sprintf(`{"url":%q,"from":0,"paused":true}`, hs.URL+"/hooks/down"))
	binary.Want(t, r, 201)
	id, _ := r.Body["id"].(string)
	rc.add("down", id, r.Body["secret"].(string))
	binary.Want(t, binary.Call(t, "PATCH", p.Base+"/v1/webhooks/"+id, hookAdmin, `{"paused":false}`), 200)

	// Backoff 1 s, then 2 s: paused after about 3 s.
	st := waitHook(t, p.Base, id, 15*time.Second, func(s hookState) bool { return s.Paused })
	if st.Failures != 3 || st.Position != 0 || st.Pending == nil || *st.Pending != 3 || st.LastError == nil || !strings.Contains(*st.LastError, "503") {
		t.Fatalf("paused state: %+v, want 3 failures, position 0, pending 3, a 503 error", st)
	}
	ds := hookDeliveries(t, p.Base, id)
	if len(ds) != 3 {
		t.Fatalf("delivery log of a paused subscription: %+v, want 3 attempts", ds)
	}
	msgID := ds[0].MessageID
	for i, d := range ds {
		if d.MessageID != msgID || d.Attempt != 3-i || d.OK || d.StatusCode == nil || *d.StatusCode != 503 ||
			d.FirstPosition != 1 || d.LastPosition != 3 || d.Count != 3 {
			t.Errorf("delivery log entry %d: %+v, want attempt %d of message %s, positions 1–3, answered 503", i, d, 3-i, msgID)
		}
	}
	ep := rc.endpoint("down")
	if len(ep.calls) != 3 || ep.calls[0].id != msgID || ep.calls[1].id != msgID || ep.calls[2].id != msgID {
		t.Fatalf("the receiver got calls %+v, want 3 of %s", ep.calls, msgID)
	}
	// Exponential backoff: a second, then two.
	if g1, g2 := ep.calls[1].at.Sub(ep.calls[0].at), ep.calls[2].at.Sub(ep.calls[1].at); g1 < 950*time.Millisecond || g2 < 1950*time.Millisecond {
		t.Errorf("retries came %v and %v after the failed attempts, want at least 1s and 2s", g1, g2)
	}

	// Paused: a new change is not sent.
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/events", hookAdmin, `{"user_id":3,"action":"deleted"}`), 201)
	time.Sleep(time.Second)
	if ep := rc.endpoint("down"); len(ep.calls) != 3 {
		t.Fatalf("the receiver got %d calls while the subscription was paused, want 3", len(ep.calls))
	}

	// The receiver recovers; resumed, the same message comes first.
	rc.setMode(hookCalm)
	r = binary.Call(t, "PATCH", p.Base+"/v1/webhooks/"+id, hookAdmin, `{"paused":false}`)
	binary.Want(t, r, 200)
	if r.Body["paused"] != false || num(r.Body["failures"]) != 0 {
		t.Fatalf("resume: %s", r.Raw)
	}
	head := lastPosition(readHookFeed(t, p.Base))
	waitHook(t, p.Base, id, 15*time.Second, func(s hookState) bool { return s.Position == head })
	ep = rc.endpoint("down")
	if len(ep.accepted) == 0 || ep.accepted[0].ID != msgID {
		t.Fatalf("after resuming, the first message accepted is %v, want %s", ep.accepted, msgID)
	}
	once := ep.acceptedPositions()
	if !slices.Equal(once, positions(1, head)) {
		t.Fatalf("after resuming the receiver accepted positions %v, want 1..%d", once, head)
	}
	ds = hookDeliveries(t, p.Base, id)
	if !ds[0].OK || ds[len(ds)-1].MessageID != msgID {
		t.Fatalf("delivery log after resuming: %+v", ds)
	}

	// Replay from 0: everything again, in order.
	r = binary.Call(t, "POST", p.Base+"/v1/webhooks/"+id+"/replay", hookAdmin, `{"from":0}`)
	binary.Want(t, r, 200)
	if num(r.Body["position"]) != 0 || r.Body["paused"] != false {
		t.Fatalf("replay: %s", r.Raw)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(rc.endpoint("down").acceptedPositions()) < 2*len(once) {
		if time.Now().After(deadline) {
			t.Fatalf("replay: the receiver accepted %v, want 1..%d twice", rc.endpoint("down").acceptedPositions(), head)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := rc.endpoint("down").acceptedPositions(); !slices.Equal(got, append(once, once...)) {
		t.Fatalf("after the replay the receiver accepted %v, want 1..%d twice", got, head)
	}
	waitHook(t, p.Base, id, 15*time.Second, func(s hookState) bool { return s.Position == head && s.Pending == nil })
	if bad := rc.endpoint("down").problems; len(bad) > 0 {
		t.Fatalf("the receiver saw: %s", strings.Join(bad, "; "))
	}
}

// hookChange is a change as the feed and the webhook messages carry it.
type hookChange struct {
	Position int64  `json:"position"`
	Kind     string `json:"kind"`
	Event    struct {
		ID     string `json:"id"`
		Action string `json:"action"`
	} `json:"event"`
}

// hookMessage is a webhook delivery as the receiver decodes it.
type hookMessage struct {
	ID   string `json:"-"` // webhook-id
	Type string `json:"type"`
	Data struct {
		Subscription string       `json:"subscription"`
		Changes      []hookChange `json:"changes"`
	} `json:"data"`
}

// hookState is GET /v1/webhooks/{id}'s delivery state.
type hookState struct {
	Position  int64   `json:"position"`
	Pending   *int64  `json:"pending_until"`
	Failures  int     `json:"failures"`
	Paused    bool    `json:"paused"`
	LastError *string `json:"last_error"`
}

// hookDelivery is an attempt of GET /v1/webhooks/{id}/deliveries.
type hookDelivery struct {
	MessageID     string `json:"message_id"`
	FirstPosition int64  `json:"first_position"`
	LastPosition  int64  `json:"last_position"`
	Count         int    `json:"count"`
	Attempt       int    `json:"attempt"`
	StatusCode    *int   `json:"status_code"`
	OK            bool   `json:"ok"`
}

// hookMode is how the receiver answers.
type hookMode int

const (
	hookCalm     hookMode = iota // every well-signed message accepted
	hookFlaky                    // 500, too slow, or slow in time, at random
	hookSettling                 // calm, once the endpoint has answered a 500 and too slowly
	hookDown                     // 503, always
)

// hookEndpoint is one subscription's endpoint at the receiver, and what it
// saw.
type hookEndpoint struct {
	id        string    // the subscription
	secret    string    // the only secret the receiver knows for it
	old       string    // the rotated-out one: the test's knowledge, to explain a refusal
	rotatedAt time.Time // when the receiver switched to secret (zero: never)
	streak    int       // failures in a row it answered

	calls         []hookCall         // in arrival order
	positions     map[string][]int64 // by webhook-id: a retry must carry the same changes
	accepted      []hookMessage      // answered 2xx, in order
	afterRotation int                // of them, signed with the new and old secrets
	answered500   int
	timeouts      int // answered after WEBHOOK_TIMEOUT
	refused       int // answered 401: no signature of a secret it knows
	preRotation   int // of them, signed before the rotation with the old secret only
	problems      []string
}

// hookCall is a call the receiver got.
type hookCall struct {
	at     time.Time
	id     string // webhook-id
	failed bool   // not accepted: 5xx, 401, or answered too late
}

// retryGaps are the shortest and longest waits between a failed call and
// the next one.
func (e hookEndpoint) retryGaps() (shortest, longest time.Duration) {
	for i := 1; i < len(e.calls); i++ {
		if !e.calls[i-1].failed {
			continue
		}
		g := e.calls[i].at.Sub(e.calls[i-1].at)
		if shortest == 0 || g < shortest {
			shortest = g
		}
		longest = max(longest, g)
	}
	return shortest, longest
}

// acceptedPositions is every position accepted, in order.
func (e hookEndpoint) acceptedPositions() []int64 {
	var ps []int64
	for _, m := range e.accepted {
		for _, c := range m.Data.Changes {
			ps = append(ps, c.Position)
		}
	}
	return ps
}

// hookReceiver is the subscribers' side: endpoints /hooks/<name> that
// check every message with the official Standard Webhooks library against
// the secret they know, and answer as the mode says.
type hookReceiver struct {
	mu   sync.Mutex
	mode hookMode
	eps  map[string]*hookEndpoint
}

func newHookReceiver(mode hookMode) *hookReceiver {
	return &hookReceiver{mode: mode, eps: map[string]*hookEndpoint{}}
}

// add makes endpoint name, for subscription id signed with secret.
func (rc *hookReceiver) add(name, id, secret string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.eps[name] = &hookEndpoint{id: id, secret: secret, positions: map[string][]int64{}}
}

// rotate makes endpoint name know only secret from now on.
func (rc *hookReceiver) rotate(name, secret string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ep := rc.eps[name]
	ep.old, ep.secret, ep.rotatedAt = ep.secret, secret, time.Now()
}

// setMode changes how the receiver answers from now on.
func (rc *hookReceiver) setMode(m hookMode) {
	rc.mu.Lock()
	rc.mode = m
	rc.mu.Unlock()
}

// endpoint is a copy of what endpoint name saw so far.
func (rc *hookReceiver) endpoint(name string) hookEndpoint {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ep := *rc.eps[name]
	ep.accepted = slices.Clone(ep.accepted)
	ep.calls = slices.Clone(ep.calls)
	ep.problems = slices.Clone(ep.problems)
	return ep
}

// summary tells, per endpoint, what the receiver answered.
func (rc *hookReceiver) summary() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var parts []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range rc.eps {
			if !yield(n) {
				return
			}
		}
	}) {
		ep := rc.eps[name]
		parts = append(parts, fmt.Sprintf("%s: %d calls, %d accepted (%d after the rotation), %d × 500, %d too slow, %d × 401 (%d signed before the rotation)",
			name, len(ep.calls), len(ep.accepted), ep.afterRotation, ep.answered500, ep.timeouts, ep.refused, ep.preRotation))
	}
	return strings.Join(parts, "; ")
}

// problem notes something no message should do; the test fails on it.
func (ep *hookEndpoint) problem(format string, args ...any) {
	ep.problems = append(ep.problems, fmt.Sprintf(format, args...))
}

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	name, _ := strings.CutPrefix(r.URL.Path, "/hooks/")
	msgID := r.Header.Get("webhook-id")
	sigs := strings.Fields(r.Header.Get("webhook-signature"))

	rc.mu.Lock()
	ep, ok := rc.eps[name]
	if !ok {
		rc.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	ep.calls = append(ep.calls, hookCall{at: time.Now(), id: msgID, failed: true})
	call := len(ep.calls) - 1 // its failed is cleared when it is accepted
	secret, old, rotatedAt := ep.secret, ep.old, ep.rotatedAt
	rc.mu.Unlock()

	// Verified with the official library, the secret the receiver knows.
	verr := verifyHook(secret, body, r.Header)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if verr != nil {
		ep.refused++
		ep.streak++
		ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if !rotatedAt.IsZero() && len(sigs) == 1 && verifyHook(old, body, r.Header) == nil && ts <= rotatedAt.Unix() {
			ep.preRotation++ // signed before the rotation: its retry carries the new signature too
		} else {
			ep.problem("message %s (%d signatures) does not verify with the secret the receiver knows: %v", msgID, len(sigs), verr)
		}
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	m := hookMessage{ID: msgID}
	if err := json.Unmarshal(body, &m); err != nil || m.Type != "activity.changes" || m.Data.Subscription != ep.id || len(m.Data.Changes) == 0 {
		ep.problem("message %s: type %q, subscription %q (want %s), %d changes, %v: %.200s", msgID, m.Type, m.Data.Subscription, ep.id, len(m.Data.Changes), err, body)
		http.Error(w, "bad message", http.StatusBadRequest)
		return
	}
	var ps []int64
	for i, c := range m.Data.Changes {
		if i > 0 && c.Position <= ps[i-1] {
			ep.problem("message %s: position %d after %d", msgID, c.Position, ps[i-1])
		}
		ps = append(ps, c.Position)
	}
	if before, ok := ep.positions[msgID]; ok && !slices.Equal(before, ps) {
		ep.problem("message %s carries positions %v, before %v: a retry must carry the same changes", msgID, ps, before)
	}
	ep.positions[msgID] = ps
	afterRotation := !rotatedAt.IsZero()
	if afterRotation && (len(sigs) != 2 || verifyHook(old, body, r.Header) != nil) {
		ep.problem("message %s after the rotation: %d signatures, the old secret verifies: %v; want both secrets to sign during the grace period",
			msgID, len(sigs), verifyHook(old, body, r.Header) == nil)
	}

	// The answer: the mode's, but never more than hookMaxStreak
	// failures in a row, so that the backoff stays short.
	const (
		accept = iota
		fail
		late // past WEBHOOK_TIMEOUT: the sender has given up
		slow // in time
	)
	answer := accept
	switch n := rand.IntN(100); {
	case rc.mode == hookDown:
		ep.streak++
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case ep.streak >= hookMaxStreak:
	case rc.mode == hookFlaky && n < 15, rc.mode == hookSettling && ep.answered500 == 0:
		answer = fail
	case rc.mode == hookFlaky && n < 23, rc.mode == hookSettling && ep.timeouts == 0:
		answer = late
	case rc.mode == hookFlaky && n < 43:
		answer = slow
	}
	switch answer {
	case fail:
		ep.streak++
		ep.answered500++
		http.Error(w, "flapping", http.StatusInternalServerError)
		return
	case late:
		ep.streak++
		ep.timeouts++
		rc.mu.Unlock()
		time.Sleep(2 * hookTimeout)
		rc.mu.Lock()
		w.WriteHeader(http.StatusNoContent)
		return
	case slow:
		rc.mu.Unlock()
		time.Sleep(hookTimeout / 5)
		rc.mu.Lock()
	}
	ep.streak = 0
	ep.calls[call].failed = false
	ep.accepted = append(ep.accepted, m)
	if afterRotation {
		ep.afterRotation++
	}
	w.WriteHeader(http.StatusNoContent)
}

// verifyHook checks a message with the official Standard Webhooks library.
func verifyHook(secret string, body []byte, h http.Header) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("the official library refuses the secret: %w", err)
	}
	return wh.Verify(body, h)
}

// hookWriters write events through the API: single creates, batches and
// status changes, until stop.
type hookWriters struct {
	base   string
	client *http.Client
	stop   atomic.Bool
	ops    atomic.Int64

	mu   sync.Mutex
	errs []error
}

// hookWriter is one writer's events not DONE yet.
type hookWriter struct{ mine []*ownEvent }

func (w *hookWriters) run(ctx context.Context, n int) {
	me := &hookWriter{}
	for ctx.Err() == nil && !w.stop.Load() {
		if err := w.step(ctx, me); err != nil {
			w.mu.Lock()
			w.errs = append(w.errs, fmt.Errorf("writer %d: %w", n, err))
			w.mu.Unlock()
			return
		}
		sleepCtx(ctx, 5*time.Millisecond+rand.N(20*time.Millisecond))
	}
}

func (w *hookWriters) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}

// step writes once: a create, a batch of 2–10, or a status change.
func (w *hookWriters) step(ctx context.Context, me *hookWriter) error {
	w.ops.Add(1)
	action := func() string { return feedActions[rand.IntN(len(feedActions))] }
	switch k := rand.IntN(10); {
	case k < 4 || len(me.mine) == 0:
		status, raw, err := w.send(ctx, "POST", "/v1/events", fmt.Sprintf(`{"user_id":%d,"action":%q}`, 1+rand.IntN(5), action()))
		var ev struct{ ID string }
		if err != nil || status != http.StatusCreated || json.Unmarshal(raw, &ev) != nil {
			return fmt.Errorf("POST /v1/events: %d %s %v", status, raw, err)
		}
		me.mine = append(me.mine, &ownEvent{id: ev.ID, status: "PENDING"})
	case k < 6:
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		n := 2 + rand.IntN(9)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"user_id":%d,"action":%q}`, 1+rand.IntN(5), action())
		}
		b.WriteString(`]}`)
		status, raw, err := w.send(ctx, "POST", "/v1/events/batch", b.String())
		var out struct {
			Items []struct {
				Status int
				Event  struct{ ID string }
			}
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(raw, &out) != nil || len(out.Items) != n {
			return fmt.Errorf("POST /v1/events/batch of %d: %d %s %v", n, status, raw, err)
		}
		for _, it := range out.Items {
			if it.Status != http.StatusCreated {
				return fmt.Errorf("POST /v1/events/batch: an item answered %d: %s", it.Status, raw)
			}
			me.mine = append(me.mine, &ownEvent{id: it.Event.ID, status: "PENDING"})
		}
	default:
		i := rand.IntN(len(me.mine))
		e := me.mine[i]
		next := map[string]string{"PENDING": "IN_PROGRESS", "IN_PROGRESS": "DONE"}[e.status]
		status, raw, err := w.send(ctx, "PATCH", "/v1/events/"+e.id, `{"status":"`+next+`"}`)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("PATCH /v1/events/%s to %s: %d %s %v", e.id, next, status, raw, err)
		}
		if e.status = next; next == "DONE" {
			me.mine = slices.Delete(me.mine, i, i+1)
		}
	}
	return nil
}

// send sends one request as the admin.
func (w *hookWriters) send(ctx context.Context, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Token "+hookAdmin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// readHookFeed reads the whole change feed as the admin.
func readHookFeed(t *testing.T, base string) []hookChange {
	t.Helper()
	var all []hookChange
	for after := int64(0); ; {
		r := binary.Call(t, "GET", fmt.Sprintf("%s/v1/changes?after=%d&limit=1000", base, after), hookAdmin, "")
		binary.Want(t, r, 200)
		var page struct{ Items []hookChange }
		if err := json.Unmarshal([]byte(r.Raw), &page); err != nil {
			t.Fatalf("a page of the feed: %v: %s", err, r.Raw)
		}
		if len(page.Items) == 0 {
			return all
		}
		all = append(all, page.Items...)
		after = page.Items[len(page.Items)-1].Position
	}
}

func lastPosition(feed []hookChange) int64 {
	if len(feed) == 0 {
		return 0
	}
	return feed[len(feed)-1].Position
}

// positions is from..to.
func positions(from, to int64) []int64 {
	var ps []int64
	for p := from; p <= to; p++ {
		ps = append(ps, p)
	}
	return ps
}

func getHook(t *testing.T, base, id string) hookState {
	t.Helper()
	r := binary.Call(t, "GET", base+"/v1/webhooks/"+id, hookAdmin, "")
	binary.Want(t, r, 200)
	var st hookState
	if err := json.Unmarshal([]byte(r.Raw), &st); err != nil {
		t.Fatalf("GET /v1/webhooks/%s: %v: %s", id, err, r.Raw)
	}
	return st
}

// waitHook polls subscription id until ok, failing t after within.
func waitHook(t *testing.T, base, id string, within time.Duration, ok func(hookState) bool) hookState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := getHook(t, base, id)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook %s: state %+v not reached within %v", id, st, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hookDeliveries(t *testing.T, base, id string) []hookDelivery {
	t.Helper()
	r := binary.Call(t, "GET", base+"/v1/webhooks/"+id+"/deliveries?limit=1000", hookAdmin, "")
	binary.Want(t, r, 200)
	var log struct{ Items []hookDelivery }
	if err := json.Unmarshal([]byte(r.Raw), &log); err != nil {
		t.Fatalf("deliveries of %s: %v: %s", id, err, r.Raw)
	}
	return log.Items
}

// items is the items member of a JSON answer.
func items(r binary.Response) []any {
	v, _ := r.Body["items"].([]any)
	return v
}

// num is a JSON number member (0 when it is not one).
func num(v any) float64 {
	f, _ := v.(float64)
	return f
}
