package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/faultproxy"
	"github.com/activityd/activityd/test/testenv"
)

// faultSeconds is how long each phase of TestNeverStale drives load:
// FAULT_SECONDS, or 3 (CI); `make faults` runs it at 20.
func faultSeconds(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("FAULT_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("FAULT_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	return 3 * time.Second
}

// TestNeverStale runs two real replicas sharing PostgreSQL and Redis, each
// reaching Redis through its own fault proxy, and checks the README's
// promise (Operating activityd, Never stale)
// through every cache fault issue 13 names: a read that begins after a
// write was answered, on either replica, holds that write. Each worker
// owns a user and, round after round, reads the user's list on one
// replica (caching it), records an event on the other, and reads again on
// the first; every read must hold every event acknowledged before it
// began. Faults: one replica cut off from Redis; one replica's path to
// Redis slower than CACHE_TIMEOUT; Redis restarted from an
// old snapshot (counters rolled back); Redis restarted empty; a failover
// to a replica that lagged. After each, caching must resume within
// seconds (the TTL is ten minutes).
func TestNeverStale(t *testing.T) {
	dbURL, _ := testenv.PostgresSchema(t)
	redisAddr, stopRedis, restartRedis := testenv.StartRedis(t)
	direct := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
	t.Cleanup(func() { direct.Close() })
	const admin = "stale-admin-token-0123456789abcdef"
	env := []string{
		"DATABASE_URL=" + dbURL,
		"BOOTSTRAP_ADMIN_TOKEN=" + admin,
		"CACHE_TTL=10m", // a stale read would outlive the test; recovery must not wait for it
		"SHUTDOWN_TIMEOUT=5s",
	}
	dir := t.TempDir()
	if _, errOut, code := binary.Run(t, dir, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	proxies := []*faultproxy.Proxy{faultproxy.New(t, redisAddr), faultproxy.New(t, redisAddr)}
	var bases []string
	for _, p := range proxies {
		srv := binary.Start(t, dir, append(env, "REDIS_URL=redis://"+p.Addr()+"/0")...)
		bases = append(bases, srv.Base)
	}
	w := &staleWorkload{bases: bases, token: admin}
	d := faultSeconds(t)

	w.firstHit(t, "at start", 0, time.Now(), 20*time.Second)
	w.run(t, "steady", d)
	if w.hits.Load() == 0 {
		t.Fatal("no read was a cache HIT without faults: the workload does not exercise the cache")
	}

	t.Run("ReplicaCutOffFromRedis", func(t *testing.T) {
		proxies[0].Cut()
		w.run(t, "replica 0 cut off from Redis", d)
		proxies[0].Restore()
		restored := time.Now()
		w.sweep(t, "right after replica 0's path came back")
		w.firstHit(t, "after replica 0's path to Redis came back", 0, restored, 10*time.Second)
	})

	t.Run("ReplicaSlowToRedis", func(t *testing.T) {
		proxies[0].Delay(200 * time.Millisecond) // past CACHE_TIMEOUT: calls time out, some after Redis did them
		w.run(t, "replica 0's path to Redis slow", d)
		proxies[0].Restore()
		restored := time.Now()
		w.sweep(t, "right after replica 0's path is fast again")
		w.firstHit(t, "after replica 0's path is fast again", 0, restored, 10*time.Second)
	})

	t.Run("RedisRestartFromOldSnapshot", func(t *testing.T) {
		if err := direct.Save(t.Context()).Err(); err != nil {
			t.Fatalf("SAVE: %v", err)
		}
		w.run(t, "after the snapshot, before the crash", d/2)
		stopRedis()
		restartRedis() // loads the snapshot: counters go back
		restarted := time.Now()
		w.sweep(t, "right after the restart from the snapshot")
		w.firstHit(t, "after the restart from a snapshot", 1, restarted, 10*time.Second)
		w.run(t, "Redis restarted from the old snapshot", d)
	})

	t.Run("RedisRestartEmpty", func(t *testing.T) {
		dirName, err := direct.ConfigGet(t.Context(), "dir").Result()
		if err != nil {
			t.Fatalf("CONFIG GET dir: %v", err)
		}
		stopRedis()
		if err := os.Remove(filepath.Join(dirName["dir"], "dump.rdb")); err != nil {
			t.Fatalf("remove the snapshot: %v", err)
		}
		restartRedis()
		restarted := time.Now()
		w.sweep(t, "right after the empty restart")
		w.firstHit(t, "after an empty restart", 0, restarted, 10*time.Second)
		w.run(t, "Redis restarted empty", d)
	})

	t.Run("FailoverToLaggingReplica", func(t *testing.T) {
		replicaAddr, _, _ := testenv.StartRedis(t)
		rep := redis.NewClient(&redis.Options{Addr: replicaAddr, MaxRetries: -1})
		t.Cleanup(func() { rep.Close() })
		host, port, _ := strings.Cut(redisAddr, ":")
		if err := rep.SlaveOf(t.Context(), host, port).Err(); err != nil {
			t.Fatalf("REPLICAOF: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, err := rep.Info(t.Context(), "replication").Result()
			if err == nil && strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the replica did not sync: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := rep.SlaveOf(t.Context(), "NO", "ONE").Err(); err != nil {
			t.Fatalf("REPLICAOF NO ONE: %v", err)
		}
		w.run(t, "writes the replica will never see", d/2)
		for _, p := range proxies {
			p.Retarget(replicaAddr)
		}
		failedOver := time.Now()
		w.sweep(t, "right after the failover")
		w.firstHit(t, "after the failover", 1, failedOver, 10*time.Second)
		w.run(t, "after the failover", d)
	})

	t.Logf("%d write-then-read pairs, %d reads checked, %d HIT, %d stale",
		w.pairs.Load(), w.reads.Load(), w.hits.Load(), w.stale.Load())
	if n := w.stale.Load(); n != 0 {
		t.Fatalf("%d stale reads", n)
	}
}

// staleWorkload is TestNeverStale's load and its checks.
type staleWorkload struct {
	bases []string
	token string

	nextUser atomic.Int64
	pairs    atomic.Int64
	reads    atomic.Int64
	hits     atomic.Int64
	stale    atomic.Int64
	users    sync.Map // worker index → *staleUser, kept across phases
}

type staleUser struct {
	id    int64
	acked []string // event ids acknowledged, oldest first
}

const staleWorkers = 8

// run drives the workload for d.
func (w *staleWorkload) run(t *testing.T, phase string, d time.Duration) {
	t.Helper()
	before, staleBefore := w.pairs.Load(), w.stale.Load()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range staleWorkers {
		v, _ := w.users.LoadOrStore(i, &staleUser{id: 90_000 + int64(i)})
		u := v.(*staleUser)
		wg.Go(func() {
			for round := 0; ctx.Err() == nil; round++ {
				reader, writer := w.bases[(i+round)%2], w.bases[(i+round+1)%2]
				if err := w.check(t, phase, reader, u); err != nil {
					t.Error(err)
					return
				}
				id, err := w.record(writer, u.id)
				if err != nil {
					t.Error(err)
					return
				}
				u.acked = append(u.acked, id)
				if err := w.check(t, phase, reader, u); err != nil {
					t.Error(err)
					return
				}
				w.pairs.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%s: %d pairs, %d stale", phase, w.pairs.Load()-before, w.stale.Load()-staleBefore)
	if n := w.stale.Load() - staleBefore; n > 0 {
		t.Errorf("%s: %d stale reads", phase, n)
	}
}

// sweep reads every user's list on every replica a few times, with no
// write in between: right after a fault, what the cache holds from before
// it is all a read can get (the first read on a replica may go to storage
// while its dead connections are replaced).
func (w *staleWorkload) sweep(t *testing.T, phase string) {
	t.Helper()
	before := w.stale.Load()
	for i := range staleWorkers {
		v, ok := w.users.Load(i)
		if !ok {
			continue
		}
		for range 3 {
			for _, base := range w.bases {
				if err := w.check(t, phase, base, v.(*staleUser)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Logf("%s: %d users read %d times on each replica, %d stale", phase, staleWorkers, 3, w.stale.Load()-before)
	if n := w.stale.Load() - before; n > 0 {
		t.Errorf("%s: %d stale reads", phase, n)
	}
}

var staleClient = &http.Client{Timeout: 10 * time.Second}

func (w *staleWorkload) do(method, url, body string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := staleClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

func (w *staleWorkload) record(base string, user int64) (string, error) {
	res, b, err := w.do("POST", base+"/v1/events", fmt.Sprintf(`{"user_id":%d,"action":"login"}`, user))
	if err != nil {
		return "", fmt.Errorf("record: %w", err)
	}
	if res.StatusCode != 201 {
		return "", fmt.Errorf("record: %d %s", res.StatusCode, b)
	}
	var e struct{ ID string }
	if err := json.Unmarshal(b, &e); err != nil || e.ID == "" {
		return "", fmt.Errorf("record: %v: %s", err, b)
	}
	return e.ID, nil
}

// check reads u's newest events on base and counts it stale unless it
// holds every event acknowledged before the read began (the newest 100).
func (w *staleWorkload) check(t *testing.T, phase, base string, u *staleUser) error {
	want := u.acked[max(0, len(u.acked)-100):]
	res, b, err := w.do("GET", base+"/v1/users/"+strconv.FormatInt(u.id, 10)+"/events?limit=100", "")
	if err != nil {
		return fmt.Errorf("%s: list: %w", phase, err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("%s: list: %d %s", phase, res.StatusCode, b)
	}
	w.reads.Add(1)
	if res.Header.Get("X-Cache") == "HIT" {
		w.hits.Add(1)
	}
	var page struct {
		Items []struct{ ID string }
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return fmt.Errorf("%s: list: %w", phase, err)
	}
	got := map[string]bool{}
	for _, e := range page.Items {
		got[e.ID] = true
	}
	for _, id := range want {
		if !got[id] {
			if w.stale.Add(1) <= 5 {
				t.Logf("%s: STALE: %s served user %d's list (X-Cache %s) without event %s, acknowledged before the read",
					phase, base, u.id, res.Header.Get("X-Cache"), id)
			}
			return nil
		}
	}
	return nil
}

// firstHit reads one user's list on replica i until it is a HIT, and
// reports how long after start that was; it fails past within.
func (w *staleWorkload) firstHit(t *testing.T, what string, i int, start time.Time, within time.Duration) {
	t.Helper()
	url := w.bases[i] + "/v1/users/" + strconv.FormatInt(90_999, 10) + "/events?limit=5"
	for {
		res, b, err := w.do("GET", url, "")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: list: %v %s", what, err, b)
		}
		if res.Header.Get("X-Cache") == "HIT" {
			t.Logf("first HIT on replica %d %s: %v", i, what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > within {
			t.Fatalf("no cache HIT on replica %d %s within %v (CACHE_TTL is 10m)", i, what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
