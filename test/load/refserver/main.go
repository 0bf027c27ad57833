// Command refserver is the reference for activityd's cached list reads in
// the load benchmarks (docs/performance.md, test/load/run.sh): a bare net/http
// handler that answers each list path with the bytes activityd answered
// for it, so that the ratio of activityd's cached reads to it is what
// activityd's routing, authentication and cache cost on top of writing
// the bytes.
//
// At start it fetches, once, GET /v1/users/{u}/events?limit=N for every
// user u in 1..-users from a running activityd (-source, with -token), and
// keeps each answer's body keyed by the request path (path and query, as
// the load tool sends it). Then it listens on -addr and answers:
//
//   - map mode (default): the body from a Go map, with the Content-Type
//     activityd sent, Content-Length and X-Cache: HIT — the reference for
//     the in-process cache;
//   - Redis mode (-redis URL): the bodies are SET under -prefix+"ref:"+path
//     (expiring after -ttl) at start, and each request does one go-redis
//     GET of its key and writes what it got — the reference for the Redis
//     cache.
//
// An unknown path is 404, GET /healthz is 200. On SIGINT or SIGTERM it
// stops, and in Redis mode deletes the keys it set. With -cleanup it only
// deletes every key under -prefix in -redis and exits (run.sh uses it to
// remove what a run left behind, activityd's cache entries included).
//
//	go run ./test/load/refserver -source http://127.0.0.1:8080 -token adt_... -users 10000 -addr 127.0.0.1:9000
//	go run ./test/load/refserver -source ... -token ... -redis redis://127.0.0.1:6379/15 -prefix bench_x:
//	go run ./test/load/refserver -redis redis://127.0.0.1:6379/15 -prefix bench_x: -cleanup
//
// Like the load tool it talks HTTP only to loopback addresses: -source and
// -addr must be loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/test/load/loopback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	addr     string
	source   *url.URL
	token    string
	users    int64
	limit    int
	fetchC   int
	redisURL string
	prefix   string
	ttl      time.Duration
	cleanup  bool
	timeout  time.Duration
}

// run is main without the process: 0 after a clean stop, 1 on a failure,
// 2 for bad arguments. When ready is not nil it receives the listening
// address once the server accepts connections.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "refserver:", err)
		return 2
	}
	if cfg.cleanup {
		n, err := cleanup(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "refserver:", err)
			return 1
		}
		fmt.Fprintf(stdout, "refserver: deleted %d keys under %q\n", n, cfg.prefix)
		return 0
	}

	t0 := time.Now()
	pages, err := fetchPages(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "refserver:", err)
		return 1
	}
	var size int64
	for _, p := range pages {
		size += int64(len(p.body))
	}
	fmt.Fprintf(stderr, "refserver: fetched %d pages (%d bytes) from %s in %s\n",
		len(pages), size, cfg.source, time.Since(t0).Round(time.Millisecond))

	var handler http.Handler
	if cfg.redisURL == "" {
		handler = newMapHandler(pages)
	} else {
		rh, err := newRedisHandler(ctx, cfg, pages)
		if err != nil {
			fmt.Fprintln(stderr, "refserver:", err)
			return 1
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := rh.deleteKeys(dctx); err != nil {
				fmt.Fprintln(stderr, "refserver: deleting its keys:", err)
			}
			rh.client.Close()
		}()
		handler = rh
	}
	pages = nil // the handler holds what it needs

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		fmt.Fprintln(stderr, "refserver:", err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	mode := "map"
	if cfg.redisURL != "" {
		mode = "redis"
	}
	fmt.Fprintf(stderr, "refserver: %s mode, listening on %s\n", mode, ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintln(stderr, "refserver:", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg    config
		source string
	)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "listen address (loopback)")
	fs.StringVar(&source, "source", "", "base URL of the running activityd to fetch the pages from (loopback)")
	fs.StringVar(&cfg.token, "token", os.Getenv("TOKEN"), "API token for -source (default $TOKEN)")
	fs.Int64Var(&cfg.users, "users", 10_000, "fetch the pages of users 1..users")
	fs.IntVar(&cfg.limit, "limit", 50, "page size of the list paths (limit=N)")
	fs.IntVar(&cfg.fetchC, "fetch-c", 8, "concurrent fetches at start")
	fs.StringVar(&cfg.redisURL, "redis", "", "serve each request with one GET from this Redis (redis://host:port/db)")
	fs.StringVar(&cfg.prefix, "prefix", "", "key prefix in Redis (required with -redis)")
	fs.DurationVar(&cfg.ttl, "ttl", 30*time.Minute, "expiry of the keys set in Redis")
	fs.BoolVar(&cfg.cleanup, "cleanup", false, "delete every key under -prefix in -redis, and exit")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout of the fetches")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.redisURL != "" || cfg.cleanup {
		if cfg.redisURL == "" {
			return nil, errors.New("-cleanup needs -redis")
		}
		if _, err := redis.ParseURL(cfg.redisURL); err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		if cfg.prefix == "" {
			return nil, errors.New("-redis needs a -prefix (its keys, and what -cleanup deletes)")
		}
		if strings.ContainsAny(cfg.prefix, "{}") {
			return nil, errors.New("-prefix must not contain braces")
		}
	}
	if cfg.cleanup {
		return &cfg, nil
	}
	if source == "" {
		return nil, errors.New("-source is required")
	}
	u, err := loopback.BaseURL("-source", source)
	if err != nil {
		return nil, err
	}
	cfg.source = u
	host, _, err := net.SplitHostPort(cfg.addr)
	if err != nil || !loopback.Host(host) {
		return nil, fmt.Errorf("-addr %q: want a loopback host:port", cfg.addr)
	}
	switch {
	case cfg.users < 1 || cfg.users > 10_000_000:
		return nil, errors.New("-users must be 1..10000000")
	case cfg.limit < 1 || cfg.limit > 1000:
		return nil, errors.New("-limit must be 1..1000")
	case cfg.fetchC < 1 || cfg.fetchC > 256:
		return nil, errors.New("-fetch-c must be 1..256")
	case cfg.ttl < time.Second:
		return nil, errors.New("-ttl must be at least 1s")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	}
	return &cfg, nil
}

// listPath is the path the load tool's list scenario requests for user u.
func listPath(u int64, limit int) string {
	return "/v1/users/" + strconv.FormatInt(u, 10) + "/events?limit=" + strconv.Itoa(limit)
}

// page is one answer of activityd: the request path, its body and
// Content-Type.
type page struct {
	path        string
	body        []byte
	contentType string
}

// fetchPages GETs every user's list page from cfg.source, -fetch-c at a
// time; any answer but 200 is an error.
func fetchPages(ctx context.Context, cfg *config) ([]page, error) {
	client := &http.Client{
		Timeout:   cfg.timeout,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: cfg.fetchC, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	pages := make([]page, cfg.users)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.fetchC {
		wg.Go(func() {
			for ctx.Err() == nil {
				u := next.Add(1)
				if u > cfg.users {
					return
				}
				p, err := fetch(ctx, client, cfg, listPath(u, cfg.limit))
				if err != nil {
					cancel(err)
					return
				}
				pages[u-1] = p
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return pages, nil
}

func fetch(ctx context.Context, client *http.Client, cfg *config, path string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.source.String()+path, nil)
	if err != nil {
		return page{}, err
	}
	if cfg.token != "" {
		req.Header.Set("Authorization", "Token "+cfg.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return page{}, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return page{}, fmt.Errorf("GET %s: status %d: %.200s", path, resp.StatusCode, body)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	return page{path: path, body: body, contentType: ct}, nil
}

// hdrHit is the X-Cache value of every answer (read-only).
var hdrHit = []string{"HIT"}

// entry is what the map mode answers for one path.
type entry struct {
	body   []byte
	ctype  []string
	length []string
}

// mapHandler is the in-process reference: one map lookup, one write.
type mapHandler struct{ pages map[string]entry }

func newMapHandler(pages []page) *mapHandler {
	m := &mapHandler{pages: make(map[string]entry, len(pages))}
	for _, p := range pages {
		m.pages[p.path] = entry{body: p.body, ctype: []string{p.contentType}, length: []string{strconv.Itoa(len(p.body))}}
	}
	return m
}

func (m *mapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	e, ok := m.pages[r.URL.RequestURI()]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = e.ctype
	h["Content-Length"] = e.length
	h["X-Cache"] = hdrHit
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}

// redisHandler is the Redis reference: one GET per request.
type redisHandler struct {
	client *redis.Client
	prefix string // cfg.prefix + "ref:"
	ctype  []string
	keys   []string // what it set, deleted at the end
}

func newRedisHandler(ctx context.Context, cfg *config, pages []page) (*redisHandler, error) {
	opts, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	h := &redisHandler{client: redis.NewClient(opts), prefix: cfg.prefix + "ref:", ctype: []string{"application/json"}}
	if len(pages) > 0 {
		h.ctype = []string{pages[0].contentType}
	}
	const chunk = 500
	for i := 0; i < len(pages); i += chunk {
		pipe := h.client.Pipeline()
		for _, p := range pages[i:min(i+chunk, len(pages))] {
			k := h.prefix + p.path
			h.keys = append(h.keys, k)
			pipe.Set(ctx, k, p.body, cfg.ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			h.client.Close()
			return nil, fmt.Errorf("storing the pages in Redis: %w", err)
		}
	}
	return h, nil
}

func (h *redisHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	b, err := h.client.Get(r.Context(), h.prefix+r.URL.RequestURI()).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		http.NotFound(w, r)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	hd := w.Header()
	hd["Content-Type"] = h.ctype
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	hd["X-Cache"] = hdrHit
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// deleteKeys removes the keys the handler set.
func (h *redisHandler) deleteKeys(ctx context.Context) error {
	for i := 0; i < len(h.keys); i += 500 {
		if err := h.client.Unlink(ctx, h.keys[i:min(i+500, len(h.keys))]...).Err(); err != nil {
			return err
		}
	}
	return nil
}

// cleanup deletes every key under cfg.prefix and returns how many.
func cleanup(ctx context.Context, cfg *config) (int64, error) {
	opts, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return 0, fmt.Errorf("-redis: %w", err)
	}
	opts.DialTimeout = 3 * time.Second
	client := redis.NewClient(opts)
	defer client.Close()
	var (
		deleted int64
		cursor  uint64
	)
	pattern := globEscape(cfg.prefix) + "*"
	for {
		keys, next, err := client.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return deleted, fmt.Errorf("scanning %s: %w", pattern, err)
		}
		if len(keys) > 0 {
			n, err := client.Unlink(ctx, keys...).Result()
			if err != nil {
				return deleted, fmt.Errorf("deleting: %w", err)
			}
			deleted += n
		}
		if next == 0 {
			return deleted, nil
		}
		cursor = next
	}
}

// globEscape escapes the characters Redis's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
