package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// BenchmarkFeedLatency measures the change feed's delivery latency on the
// real binary over PostgreSQL: events are created one at a time, and each
// is timed from its 201 arriving to its Server-Sent Event arriving at every
// open SSE reader (1, then 10 readers); p50-ms and p99-ms are over every
// (event, reader) pair. An event that arrives before its 201 counts 0.
func BenchmarkFeedLatency(b *testing.B) {
	url, _ := testenv.PostgresSchema(b)
	const admin = "feed-bench-admin-token-0123456789abcdef"
	base := benchServe(b, "DATABASE_URL="+url, "BOOTSTRAP_ADMIN_TOKEN="+admin)
	for _, readers := range []int{1, 10} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) { benchFeedLatency(b, base, admin, readers) })
	}
}

// sseArrival is one event's id and when its SSE event arrived.
type sseArrival struct {
	id string
	at time.Time
}

func benchFeedLatency(b *testing.B, base, admin string, readers int) {
	head := feedHeadOf(b, base, admin)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	arrivals := make([]chan sseArrival, readers)
	for i := range arrivals {
		arrivals[i] = make(chan sseArrival, 64)
		ready := make(chan error, 1)
		wg.Go(func() { followSSE(ctx, base, admin, head, arrivals[i], ready) })
		if err := <-ready; err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var lat []time.Duration
	for b.Loop() {
		id, acked := benchCreate(b, client, base, admin)
		for r, ch := range arrivals {
			select {
			case a, ok := <-ch:
				if !ok {
					b.Fatalf("reader %d: the stream ended", r)
				}
				if a.id != id {
					b.Fatalf("reader %d: event %s arrived, want %s (events are created one at a time)", r, a.id, id)
				}
				lat = append(lat, max(0, a.at.Sub(acked)))
			case <-time.After(10 * time.Second):
				b.Fatalf("reader %d: event %s did not arrive within 10s of its 201", r, id)
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(quantileMs(lat, 0.50), "p50-ms")
	b.ReportMetric(quantileMs(lat, 0.99), "p99-ms")
}

// benchCreate records one event and returns its id and when its 201
// arrived.
func benchCreate(b *testing.B, c *http.Client, base, admin string) (string, time.Time) {
	req, err := http.NewRequest("POST", base+"/v1/events", strings.NewReader(`{"user_id":1,"action":"login"}`))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	acked := time.Now()
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ev struct{ ID string }
	if err != nil || resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &ev) != nil {
		b.Fatalf("POST /v1/events: %d %s (%v)", resp.StatusCode, raw, err)
	}
	return ev.ID, acked
}

// quantileMs is the q-quantile (nearest rank) of sorted, in milliseconds.
func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := max(int(math.Ceil(q*float64(len(sorted))))-1, 0)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// followSSE streams the feed after position after and sends each event's
// id and arrival time on out, which it closes when the stream ends; ready
// gets nil once the stream is open (its first line read), or the error.
func followSSE(ctx context.Context, base, token string, after int64, out chan<- sseArrival, ready chan<- error) {
	defer close(out)
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/changes?after=%d", base, after), nil)
	if err != nil {
		ready <- err
		return
	}
	req.Header.Set("Authorization", "Token "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ready <- err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ready <- fmt.Errorf("SSE: %d", resp.StatusCode)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if !sc.Scan() {
		ready <- fmt.Errorf("SSE: no first line: %v", sc.Err())
		return
	}
	ready <- nil
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		at := time.Now()
		var ch feedChange
		if json.Unmarshal([]byte(data), &ch) != nil {
			return // the benchmark sees the channel closed
		}
		select {
		case out <- sseArrival{ch.Event.ID, at}:
		case <-ctx.Done():
			return
		}
	}
}

// feedHeadOf pages through the feed to its last position.
func feedHeadOf(b *testing.B, base, token string) int64 {
	var after int64
	for {
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/v1/changes?after=%d&limit=1000", base, after), nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Token "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var page feedPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || page.NextPosition == nil {
			b.Fatalf("GET /v1/changes: %d (%v)", resp.StatusCode, err)
		}
		if *page.NextPosition == after {
			return after
		}
		after = *page.NextPosition
	}
}

// benchServe runs `activityd migrate`, then `activityd serve` for a
// benchmark (binary.Start takes a *testing.T), in a minimal environment
// and then env, on a free loopback port, and returns its base URL once
// /healthz answers; the server is killed at cleanup.
func benchServe(b *testing.B, env ...string) string {
	b.Helper()
	dir := b.TempDir()
	addr := freeAddr(b)
	env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LOG_FORMAT=json", "HTTP_ADDR=" + addr}, env...)
	migrate := exec.Command(binary.Path(b), "migrate")
	migrate.Dir, migrate.Env = dir, env
	if out, err := migrate.CombinedOutput(); err != nil {
		b.Fatalf("migrate: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "serve.log")
	logs, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logs.Close() // the child holds its own descriptor
	serve := exec.Command(binary.Path(b), "serve")
	serve.Dir, serve.Env, serve.Stdout, serve.Stderr = dir, env, logs, logs
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = serve.Wait(); close(exited) }()
	b.Cleanup(func() { _ = serve.Process.Kill(); <-exited })
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
		default:
			if time.Now().Before(deadline) {
				continue
			}
		}
		out, _ := os.ReadFile(logPath)
		b.Fatalf("activityd serve did not answer /healthz on %s\n%s", addr, tail(string(out)))
	}
}
