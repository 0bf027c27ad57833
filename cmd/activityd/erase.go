package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// eraser is the principal of activityd erase: an admin, named in the
// erasure's change.
var eraser = domain.Principal{Name: "cli:erase", Scopes: []domain.Scope{domain.ScopeAdmin}}

const eraseUsage = `usage: activityd erase --user ID [--from TIME] [--to TIME]

Removes the metadata of the user's events (recorded in [--from, --to) when
given, RFC 3339), straight in the store DATABASE_URL names (set it: the
default is the local SQLite file), as
POST /v1/users/{id}/erasure does: the events, their counts and history
stay; the erasure is recorded in the change feed; running it again erases
nothing more. Caches of running servers forget the user when REDIS_URL is
shared; otherwise their reads expire within CACHE_TTL.
`

func eraseCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, eraseUsage) }
	var q app.ErasureQuery
	fs.StringVar(&q.UserID, "user", "", "user id")
	fs.StringVar(&q.From, "from", "", "RFC 3339")
	fs.StringVar(&q.To, "to", "", "RFC 3339")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 || q.UserID == "" {
		return usageError{fmt.Errorf("--user is required, and nothing else is an argument\n\n%s", eraseUsage)}
	}
	// The flags are checked before the store is opened (or created).
	if n, err := strconv.ParseInt(q.UserID, 10, 64); err != nil || n < 1 {
		return usageError{fmt.Errorf("--user: must be a positive integer")}
	}
	for _, f := range []struct{ name, value string }{{"--from", q.From}, {"--to", q.To}} {
		if _, err := time.Parse(time.RFC3339Nano, f.value); f.value != "" && err != nil {
			return usageError{fmt.Errorf("%s: must be an RFC 3339 time", f.name)}
		}
	}
	p, err := startProcess(ctx, cfg, "activityd-erase", log, cliStoreNote("erase", stderr))
	if err != nil {
		return err
	}
	defer p.close()
	var opts []app.Option
	if cfg.RedisURL != "" && cfg.CacheTTL > 0 {
		cacheCfg, err := p.readCache(ctx)
		if err != nil {
			return err
		}
		if cacheCfg.Cache != nil {
			opts = append(opts, app.WithCache(cacheCfg))
		}
	}
	events := app.NewEvents(p.store, ports.SystemClock, cfg.Limits, opts...)
	e, err := events.Erase(ctx, eraser, q)
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		return usageError{flagErrors(err)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "activityd erase: user %d: the metadata of %d events erased\n", e.UserID, e.Count)
	return nil
}
