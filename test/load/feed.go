package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Feed consumers during a load (issue 17's "ingest with and without 10
// feed readers and 3 webhook subscriptions"): -followers SSE readers of
// GET /v1/changes, and -webhooks subscriptions delivering to a receiver
// in this process. They run from before the warm-up to the end, and each
// summary says how many changes they took during its run.

// consumers counts the changes the followers and the receiver took.
type consumers struct {
	followed  atomic.Int64 // changes received by all followers together
	delivered atomic.Int64 // changes received by the webhook receiver
	stop      func()
}

// startConsumers starts cfg.followers readers and cfg.webhooks
// subscriptions (the server must allow loopback http targets:
// WEBHOOK_ALLOW=127.0.0.1/32 WEBHOOK_ALLOW_HTTP=true).
func startConsumers(ctx context.Context, cfg *config) (*consumers, error) {
	c := &consumers{stop: func() {}}
	if cfg.followers == 0 && cfg.webhooks == 0 {
		return c, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	auth := "Token " + cfg.token
	base := cfg.baseURL.String()
	head, err := feedHead(ctx, base, auth)
	if err != nil {
		cancel()
		return nil, err
	}
	for range cfg.followers {
		go c.follow(ctx, base, auth, head)
	}
	var (
		srv  *http.Server
		subs []string
	)
	if cfg.webhooks > 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			return nil, err
		}
		srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			c.delivered.Add(int64(bytes.Count(b, []byte(`"position":`))))
			w.WriteHeader(http.StatusNoContent)
		})}
		go srv.Serve(ln) //nolint:errcheck // closed at stop
		for i := range cfg.webhooks {
			body := fmt.Sprintf(`{"url":"http://%s/hook/%d","from":%d}`, ln.Addr(), i, head)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/webhooks", strings.NewReader(body))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("subscribe a webhook: %w", err)
			}
			msg, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				cancel()
				return nil, fmt.Errorf("subscribe a webhook: %s: %s (the server needs WEBHOOK_ALLOW=127.0.0.1/32 WEBHOOK_ALLOW_HTTP=true)", res.Status, msg)
			}
			var sub struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(msg, &sub)
			subs = append(subs, sub.ID)
		}
	}
	c.stop = func() {
		cancel()
		if srv != nil {
			srv.Close()
		}
		for _, id := range subs { // later runs must not pay for them
			req, _ := http.NewRequest(http.MethodDelete, base+"/v1/webhooks/"+id, nil)
			req.Header.Set("Authorization", auth)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
	}
	return c, nil
}

// feedHead reads the feed to its end, in pages of 1000, and returns the
// last position.
func feedHead(ctx context.Context, base, auth string) (int64, error) {
	var after int64
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/changes?limit=1000&after="+strconv.FormatInt(after, 10), nil)
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("read the feed's head: %w", err)
		}
		var p struct {
			Items []json.RawMessage `json:"items"`
			Next  int64             `json:"next_position"`
		}
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("read the feed's head: %s, %v", res.Status, err)
		}
		if len(p.Items) < 1000 {
			return p.Next, nil
		}
		after = p.Next
	}
}

// follow reads the feed as Server-Sent Events from after, reconnecting
// after a failure, counting the changes.
func (c *consumers) follow(ctx context.Context, base, auth string, after int64) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/changes", nil)
		req.Header.Set("Authorization", auth)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r := bufio.NewReaderSize(res.Body, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				break
			}
			if rest, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
				if n, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64); err == nil {
					after = n
					c.followed.Add(1)
				}
			}
		}
		res.Body.Close()
	}
}
