package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

const exportUsage = `usage:
  activityd export [flags]

Writes the events of the store DATABASE_URL names that match the filters,
as NDJSON or CSV: the same bytes as GET /v1/events/export, the last line
the completion marker ({"export_complete":true,"count":N} or
#export_complete,N). A file without that line is not a complete export.

flags:
  --user ID          only this user's events
  --action A         only these actions (repeat the flag, or A,B,C)
  --status S         only this status (PENDING, IN_PROGRESS or DONE)
  --from T           recorded at or after T (RFC 3339)
  --to T             recorded before T (RFC 3339; default: when the export began)
  --order asc|desc   by recorded time, then id (default asc: oldest first)
  --format ndjson|csv
                     default: from the --output extension (.csv, .ndjson,
                     .jsonl, also before .gz), else ndjson
  --output FILE      write FILE (default: standard output); the export is
                     written to FILE.tmp and renamed FILE only once complete
  --gzip             compress (implied by an --output ending in .gz)
  --progress=auto    a progress line on a terminal (auto), always (on) or never (off)
`

// exporter is the principal activityd export acts as: an admin, who may
// read every user's events.
var exporter = domain.Principal{Name: "export", Scopes: []domain.Scope{domain.ScopeAdmin}}

// exportOptions is activityd export's command line.
type exportOptions struct {
	query    domain.Query
	format   string // ndjson or csv
	output   string // "" or "-": standard output
	gzip     bool
	progress string
}

// actionList is a repeatable flag whose values may also be comma lists.
type actionList []string

func (a *actionList) String() string { return strings.Join(*a, ",") }

func (a *actionList) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*a = append(*a, x)
		}
	}
	return nil
}

// exportFlagOf names the flag of each filter field the domain reports.
var exportFlagOf = map[string]string{"user_id": "--user", "action": "--action", "status": "--status",
	"from": "--from", "to": "--to", "order": "--order"}

func parseExportArgs(args []string, limits domain.Limits, stderr io.Writer) (exportOptions, error) {
	o := exportOptions{progress: "auto"}
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, exportUsage) }
	var actions actionList
	fs.StringVar(&o.query.UserID, "user", "", "user id")
	fs.Var(&actions, "action", "actions")
	fs.StringVar(&o.query.Status, "status", "", "status")
	fs.StringVar(&o.query.From, "from", "", "RFC 3339")
	fs.StringVar(&o.query.To, "to", "", "RFC 3339")
	fs.StringVar(&o.query.Order, "order", "asc", "asc or desc")
	fs.StringVar(&o.format, "format", "", "ndjson or csv")
	fs.StringVar(&o.output, "output", "", "file")
	fs.BoolVar(&o.gzip, "gzip", false, "compress")
	fs.StringVar(&o.progress, "progress", "auto", "auto, on or off")
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q: the filters are flags\n\n%s", fs.Arg(0), exportUsage)}
	}
	o.query.Actions = actions
	if o.query.Order == "" {
		o.query.Order = "asc"
	}
	// The filters are checked as the API checks them, before the store
	// is opened; a mistake is named by its flag.
	if _, err := limits.Filter(o.query); err != nil {
		return o, usageError{flagErrors(err)}
	}
	name := strings.TrimSuffix(o.output, ".gz")
	if name != o.output {
		o.gzip = true
	}
	if o.format == "" {
		switch strings.ToLower(filepath.Ext(name)) {
		case ".csv":
			o.format = httpapi.FormatCSV
		default:
			o.format = httpapi.FormatNDJSON
		}
	}
	if o.format != httpapi.FormatNDJSON && o.format != httpapi.FormatCSV {
		return o, usageError{fmt.Errorf("--format=%s: ndjson or csv", o.format)}
	}
	if o.progress != "auto" && o.progress != "on" && o.progress != "off" {
		return o, usageError{fmt.Errorf("--progress=%s: auto, on or off", o.progress)}
	}
	return o, nil
}

// flagErrors rewrites the domain's field errors in the command line's
// words: each flag and what is wrong with it.
func flagErrors(err error) error {
	var ve *domain.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) == 0 {
		return err
	}
	parts := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		name := exportFlagOf[f.Field]
		if name == "" {
			name = f.Field
		}
		parts[i] = name + ": " + f.Message
	}
	return errors.New(strings.Join(parts, "; "))
}

// exportCmd is activityd export.
func exportCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	o, err := parseExportArgs(args, cfg.Limits, stderr)
	if err != nil {
		return err
	}
	p, err := startProcess(ctx, cfg, "activityd-export", log, cliStoreNote("export", stderr))
	if err != nil {
		return err
	}
	defer p.close()
	events := app.NewEvents(p.store, ports.SystemClock, cfg.Limits)
	run := &exportRun{opts: o, events: events, stdout: stdout, began: time.Now()}
	if o.progress == "on" || (o.progress == "auto" && isTerminal(stderr)) {
		run.progress = stderr
	}
	n, err := run.run(ctx)
	run.endProgress()
	if err != nil {
		return err
	}
	elapsed := time.Since(run.began)
	fmt.Fprintf(stderr, "activityd export: %d events to %s (%s) in %s (%.0f events/s)\n",
		n, run.destination(), run.describeFormat(), elapsed.Round(time.Millisecond), rate(n, elapsed))
	return nil
}

// exportRun is one activityd export.
type exportRun struct {
	opts     exportOptions
	events   *app.Events
	stdout   io.Writer
	progress io.Writer // nil: no progress line
	began    time.Time
	count    int       // events written so far
	shown    time.Time // when the progress line was last drawn
}

func (r *exportRun) destination() string {
	if r.opts.output == "" || r.opts.output == "-" {
		return "standard output"
	}
	return r.opts.output
}

func (r *exportRun) describeFormat() string {
	if r.opts.gzip {
		return r.opts.format + ", gzip"
	}
	return r.opts.format
}

// run writes the export and returns how many events it holds. A file is
// written as FILE.tmp and renamed FILE once complete: a FILE is always a
// complete export; an export that fails leaves no FILE.tmp behind either.
func (r *exportRun) run(ctx context.Context) (n int, err error) {
	if r.opts.output == "" || r.opts.output == "-" {
		return r.write(ctx, r.stdout)
	}
	tmp := r.opts.output + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if n, err = r.write(ctx, f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	if err = os.Rename(tmp, r.opts.output); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

// write writes the whole export to w: the events, then the completion line.
func (r *exportRun) write(ctx context.Context, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	out := io.Writer(bw)
	var zw *gzip.Writer
	if r.opts.gzip {
		zw = gzip.NewWriter(bw)
		out = zw
	}
	// The API's encoder: the same bytes as GET /v1/events/export.
	enc, err := httpapi.NewExportEncoder(out, r.opts.format)
	if err != nil {
		return 0, err
	}
	n, err := r.events.Export(ctx, exporter, r.opts.query, func(e domain.Event) error {
		if err := enc.Event(e); err != nil {
			return err
		}
		r.tick()
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("export after %d events: %w", n, err)
	}
	if err := enc.Complete(n); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return n, fmt.Errorf("export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

// tick counts one event and draws the progress line at the first, then
// at most five times a second.
func (r *exportRun) tick() {
	r.count++
	if r.progress == nil {
		return
	}
	now := time.Now()
	if !r.shown.IsZero() && now.Sub(r.shown) < 200*time.Millisecond {
		return
	}
	r.shown = now
	fmt.Fprintf(r.progress, "\rexported %d events (%.0f events/s)\033[K", r.count, rate(r.count, now.Sub(r.began)))
}

func (r *exportRun) endProgress() {
	if r.progress != nil && !r.shown.IsZero() {
		fmt.Fprint(r.progress, "\r\033[K")
	}
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
