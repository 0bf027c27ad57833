// Command activityd records and serves user activity. It is the
// composition root: the only place that knows the concrete adapters. It
// reads its configuration from the environment, opens the store that
// DATABASE_URL names, and runs one of its subcommands:
//
//	activityd [serve]      run the HTTP API (the default)
//	activityd worker       compute the counting tasks queued in Redis
//	activityd scheduler    queue the counting tasks on the schedule
//	activityd migrate      apply storage migrations and exit
//	activityd token ...    create, list, revoke or import API tokens
//	activityd import ...   bring a predecessor's database into the store
//	activityd export ...   write the events that match filters as NDJSON or CSV
//	activityd version      print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/adapters/storage"
	_ "github.com/activityd/activityd/adapters/storage/memory"
	_ "github.com/activityd/activityd/adapters/storage/postgres"
	_ "github.com/activityd/activityd/adapters/storage/sqlite"
	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/ports"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: activityd [command]

commands:
  serve     run the HTTP API (default); without REDIS_URL it also runs
            the counting job in process
  worker    compute the counting windows queued in Redis (needs REDIS_URL;
            run any number)
  scheduler queue the counting windows on COUNT_SCHEDULE (needs REDIS_URL;
            one or more: a window is queued once however many run)
  migrate   apply storage migrations and exit
  token     manage API tokens: token create|list|revoke|import (see activityd token -h)
  import    bring a predecessor's database in: import activity-logger|event-tracking URL
            (see activityd import -h)
  export    write the events that match filters as NDJSON or CSV, to a file
            or standard output, ending with a completion line
            (see activityd export -h)
  erase     remove a user's event metadata (the right to erasure):
            erase --user ID [--from TIME] [--to TIME]
  checkpoint
            sign a checkpoint of every user's hash chain now, store it and
            write it to CHECKPOINT_SINKS
  verify    recompute the hash chains (every user's, or --user ID) and
            check them against a checkpoint (see activityd verify -h)
  verify-proof
            check an event's inclusion proof offline with the public key:
            verify-proof --key KEY [PROOF.json] (no database needed)
  config    print the configuration in effect: every setting, its value
            and whether it came from the environment (secrets hidden)
  help config
            list every setting (environment variable) with its default
            and meaning
  version   print the version

Configuration comes from the environment: 'activityd help config' lists
every setting. Every command that opens the store (DATABASE_URL, by
default sqlite:./data/activity.db in the working directory) says which
one on standard error.
`

// run is main without the process: testable, and every exit path returns a
// status code instead of calling os.Exit.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "activityd", version)
		return 0
	case "help", "-h", "--help":
		switch {
		case len(args) == 0:
			fmt.Fprint(stdout, usage)
		case args[0] == "config" && len(args) == 1:
			printSettingsHelp(stdout)
		default:
			fmt.Fprintf(stderr, "activityd help: no help on %q (try activityd help config)\n\n%s", strings.Join(args, " "), usage)
			return 2
		}
		return 0
	case "config":
		return configCmd(args, getenv, stdout, stderr)
	case "verify-proof":
		return verifyProofCmd(args, os.Stdin, stdout, stderr)
	case "serve", "worker", "scheduler", "migrate", "token", "import", "export", "erase", "checkpoint", "verify":
	default:
		fmt.Fprintf(stderr, "activityd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "activityd: configuration: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	redis.SetLogger(redisLog{log}) // go-redis's own lines (the cache, asynq) go to slog
	// GOGC and the soft memory limit MEMORY_LIMIT derives (gc.go): said at
	// start by the long-running commands.
	memLevel := slog.LevelInfo
	if cmd == "migrate" || cmd == "token" || cmd == "import" || cmd == "export" || cmd == "erase" || cmd == "checkpoint" || cmd == "verify" {
		memLevel = slog.LevelDebug
	}
	tuneMemory(cfg.Memory, log, memLevel)

	switch cmd {
	case "serve":
		err = serve(ctx, cfg, log, stdout)
	case "worker":
		err = worker(ctx, cfg, log)
	case "scheduler":
		err = scheduler(ctx, cfg, log)
	case "migrate":
		err = migrate(ctx, cfg, log, stderr)
	case "token":
		err = tokenCmd(ctx, cfg, args, stdout, stderr)
	case "import":
		err = importCmd(ctx, cfg, args, stdout, stderr, log)
	case "export":
		err = exportCmd(ctx, cfg, args, stdout, stderr, log)
	case "erase":
		err = eraseCmd(ctx, cfg, args, stdout, stderr, log)
	case "checkpoint":
		err = checkpointCmd(ctx, cfg, args, stdout, stderr, log)
	case "verify":
		err = verifyCmd(ctx, cfg, args, stdout, stderr, log)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errBroken):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "activityd %s: %v\n", cmd, err)
		return 2
	default:
		log.Error(cmd+" failed", "err", err)
		return 1
	}
}

// configCmd is activityd config: the configuration in effect, also when
// it is wrong (each setting as read, then the error, status 2).
func configCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprint(stdout, "usage: activityd config\n\nprints every setting in effect, its value and its source (env or default);\n'activityd help config' says what each means.\n")
			return 0
		}
		fmt.Fprintf(stderr, "activityd config: unexpected argument %q\n", args[0])
		return 2
	}
	cfg, err := loadConfig(getenv)
	printEffectiveConfig(stdout, cfg, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "activityd config: configuration: %v\n", err)
		return 2
	}
	return 0
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }

// newLogger builds the slog logger LOG_FORMAT and LOG_LEVEL ask for: tint's
// coloured text on a terminal, JSON otherwise.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by loadConfig
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, ReplaceAttr: readableDuration}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration}))
}

// readableDuration writes a time.Duration attribute as people and the
// configuration write it ("15s", "1m30s"), not as the nanoseconds the
// JSON handler would give (15000000000).
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// openStore opens and migrates the store DATABASE_URL names, after note
// has said which one (store.go). With tel, its statements are spans of the
// requests and jobs that run them, and its connection pool is measured;
// nil (migrate, token): neither.
func openStore(ctx context.Context, cfg config, tel *telemetry.Telemetry, note storeNote) (ports.Store, error) {
	note(describeStore(cfg.DatabaseURL))
	opts := storage.Options{
		MaxOpenConns:     cfg.DBMaxOpenConns,
		MaxIdleConns:     cfg.DBMaxIdleConns,
		ConnMaxLifetime:  cfg.DBConnMaxLifetime,
		StatementTimeout: cfg.DBStatementTimeout,
		ConnectTimeout:   cfg.DBConnectTimeout,
		Unchained:        cfg.Unchained,
	}
	if tel != nil {
		opts.TracerProvider, opts.MeterProvider = tel.ClientTracerProvider(), tel.MeterProvider()
	}
	st, err := storage.Open(ctx, cfg.DatabaseURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open storage (DATABASE_URL): %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate storage: %w", err)
	}
	return st, nil
}

func migrate(ctx context.Context, cfg config, log *slog.Logger, stderr io.Writer) error {
	st, err := openStore(ctx, cfg, nil, cliStoreNote("migrate", stderr))
	if err != nil {
		return err
	}
	log.Info("storage migrated", "storage", describeStore(cfg.DatabaseURL).Name)
	return st.Close()
}
