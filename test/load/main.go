// Command load is activityd's HTTP load generator: it drives one scenario
// against a running activityd on this machine and prints one line per run
// (requests/s, events/s, latency percentiles, errors by status), and with
// -runs N the median of the N runs. The standard library only.
//
//	go run ./test/load -url http://127.0.0.1:8080 -token adt_... -scenario create -c 64 -d 10s
//	go run ./test/load -url ... -token ... -seed 1000000 -users 10000 -c 4
//
// Scenarios:
//
//	create  POST /v1/events, one event per request (201 expected)
//	batch   POST /v1/events/batch with -batch events (200, every item 201)
//	list    GET /v1/users/{id}/events?limit=-limit for a random user in
//	        1..-users (or -list-user), newest first (200)
//	mixed   80% list, 20% create
//	headers an unauthenticated GET /v1/events carrying one header of
//	        -header-bytes (1 MiB), on a connection of its own, written at
//	        once; a 431 is the expected answer (the server refuses the
//	        header block past its limit, so it never buffers all of it)
//	seed    -seed N events through POST /v1/events/batch, -batch per request,
//	        -c requests in flight, user i%users+1, occurred_at spread over
//	        the past 30 days (recorded_at is the server's clock)
//
// With -body-bytes N, batch and seed requests pad each event's metadata so
// that the body is just under N bytes (1 MiB batches: -body-bytes 1048576).
//
// Latencies are those of successful requests; every other outcome is
// counted under its HTTP status ("503"), "net" (transport error or
// timeout), or "item:<status>" for a failed item of a batch. It only talks
// to loopback addresses: a -url whose host is not loopback is refused, and
// every connection's resolved address is checked again when it is dialled.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

// config is the parsed command line.
type config struct {
	baseURL     *url.URL
	token       string
	scenario    string
	concurrency int
	duration    time.Duration
	maxRequests int64
	users       int64
	batch       int
	warmup      time.Duration
	runs        int
	json        bool
	seed        int64
	listUser    int64
	limit       int
	timeout     time.Duration
	maxErrors   int64
	label       string
	headerBytes int   // the headers scenario's header size
	bodyBytes   int64 // pad batch bodies to just under this; 0: no padding
	followers   int   // SSE readers of the change feed during the load
	webhooks    int   // webhook subscriptions delivering to this process during the load
}

var scenarios = []string{"create", "batch", "list", "mixed", "headers", "seed"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: 0 when every request succeeded, 1 when
// some failed (the figures are printed anyway), 2 for bad arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	client := newClient(cfg)
	defer client.CloseIdleConnections()

	failed := false
	report := func(s summary) {
		if cfg.json {
			fmt.Fprintln(stdout, s.JSON())
		} else {
			fmt.Fprintln(stdout, s.Text())
		}
		if s.Errors > 0 {
			failed = true
		}
	}

	if cfg.scenario == "seed" {
		report(seed(ctx, cfg, client))
	} else {
		cons, err := startConsumers(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "load:", err)
			return 1
		}
		defer cons.stop()
		if cfg.warmup > 0 {
			measure(ctx, cfg, client, cfg.warmup) // figures discarded
		}
		var all []summary
		for i := 0; i < cfg.runs && ctx.Err() == nil; i++ {
			followed, delivered := cons.followed.Load(), cons.delivered.Load()
			s := measure(ctx, cfg, client, cfg.duration)
			s.Followed, s.Delivered = cons.followed.Load()-followed, cons.delivered.Load()-delivered
			s.Run = i + 1
			all = append(all, s)
			report(s)
		}
		if len(all) > 1 {
			report(medianOf(all))
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "load: interrupted")
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg    config
		rawURL string
	)
	fs.StringVar(&rawURL, "url", "http://127.0.0.1:8080", "base URL of activityd (loopback only)")
	fs.StringVar(&cfg.token, "token", os.Getenv("TOKEN"), "API token with the admin scope (default $TOKEN)")
	fs.StringVar(&cfg.scenario, "scenario", "create", "one of "+strings.Join(scenarios, ", "))
	fs.IntVar(&cfg.concurrency, "c", 32, "concurrent clients (connections)")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "duration of each measured run (for seed: the time limit, default 30m)")
	fs.Int64Var(&cfg.maxRequests, "n", 5_000_000, "at most this many requests per run (a bound, not a target)")
	fs.Int64Var(&cfg.users, "users", 10_000, "distinct user ids, 1..users")
	fs.IntVar(&cfg.batch, "batch", 1000, "events per batch request (batch, seed)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured traffic before the first run")
	fs.IntVar(&cfg.runs, "runs", 1, "measured runs; more than one also prints their median")
	fs.BoolVar(&cfg.json, "json", false, "print JSON lines instead of text")
	fs.Int64Var(&cfg.seed, "seed", 0, "insert this many events and exit (the seed scenario)")
	fs.Int64Var(&cfg.listUser, "list-user", 0, "list this user's events (default: a random user per request)")
	fs.IntVar(&cfg.limit, "limit", 50, "page size of list requests")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.Int64Var(&cfg.maxErrors, "max-errors", 10_000, "stop a run after this many errors (0: no limit)")
	fs.StringVar(&cfg.label, "label", "", "free text copied into the output (e.g. the store)")
	fs.IntVar(&cfg.headerBytes, "header-bytes", 1<<20, "size of the one large header of the headers scenario")
	fs.Int64Var(&cfg.bodyBytes, "body-bytes", 0, "pad batch bodies to just under this many bytes (0: no padding)")
	fs.IntVar(&cfg.followers, "followers", 0, "Server-Sent Events readers of GET /v1/changes running during the load")
	fs.IntVar(&cfg.webhooks, "webhooks", 0, "webhook subscriptions delivering to a receiver in this process during the load (the server needs WEBHOOK_ALLOW=127.0.0.1/32 WEBHOOK_ALLOW_HTTP=true)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	u, err := checkLoopbackURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.baseURL = u
	if cfg.seed > 0 {
		if set["scenario"] && cfg.scenario != "seed" {
			return nil, fmt.Errorf("-seed goes with -scenario seed, not %s", cfg.scenario)
		}
		cfg.scenario = "seed"
	}
	switch {
	case !contains(scenarios, cfg.scenario):
		return nil, fmt.Errorf("-scenario %q: want one of %s", cfg.scenario, strings.Join(scenarios, ", "))
	case cfg.scenario == "seed" && cfg.seed <= 0:
		return nil, errors.New("the seed scenario needs -seed N > 0")
	case cfg.concurrency < 1 || cfg.concurrency > 4096:
		return nil, errors.New("-c must be 1..4096")
	case cfg.duration <= 0:
		return nil, errors.New("-d must be positive")
	case cfg.maxRequests < 1:
		return nil, errors.New("-n must be positive")
	case cfg.users < 1:
		return nil, errors.New("-users must be positive")
	case cfg.batch < 1 || cfg.batch > 1000:
		return nil, errors.New("-batch must be 1..1000 (the API's limit)")
	case cfg.warmup < 0:
		return nil, errors.New("-warmup must not be negative")
	case cfg.runs < 1 || cfg.runs > 100:
		return nil, errors.New("-runs must be 1..100")
	case cfg.limit < 1 || cfg.limit > 1000:
		return nil, errors.New("-limit must be 1..1000")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	case cfg.maxErrors < 0:
		return nil, errors.New("-max-errors must not be negative")
	case cfg.listUser < 0:
		return nil, errors.New("-list-user must not be negative")
	case cfg.headerBytes < 1 || cfg.headerBytes > 64<<20:
		return nil, errors.New("-header-bytes must be 1..64 MiB")
	case cfg.bodyBytes < 0 || cfg.bodyBytes > 1<<30:
		return nil, errors.New("-body-bytes must be 0..1 GiB")
	case cfg.followers < 0 || cfg.followers > 1000 || cfg.webhooks < 0 || cfg.webhooks > 100:
		return nil, errors.New("-followers must be 0..1000 and -webhooks 0..100")
	}
	if cfg.scenario == "seed" && !set["d"] {
		cfg.duration = 30 * time.Minute
	}
	if cfg.scenario == "headers" && cfg.baseURL.Scheme != "http" {
		return nil, errors.New("the headers scenario speaks plain HTTP: give an http:// -url")
	}
	if cfg.token == "" && cfg.scenario != "headers" {
		fmt.Fprintln(stderr, "load: warning: no -token (or $TOKEN); requests go unauthenticated")
	}
	return &cfg, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
