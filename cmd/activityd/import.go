package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/mattn/go-isatty"

	"github.com/activityd/activityd/adapters/predecessor"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

const importUsage = `usage:
  activityd import [flags] activity-logger URL
  activityd import [flags] event-tracking URL

Brings a predecessor's database into the store DATABASE_URL names: its
events with their times, statuses, actions and metadata, their old ids as
legacy ids, and (activity-logger) its DRF tokens, hashed, bound to their
user with events:read and events:write. URL is sqlite:PATH or
postgres://...; the source is only read. Re-running imports nothing twice;
an interrupted run is finished by running it again.

flags (before or after the arguments):
  --dry-run          check every row and report; store nothing
  --refused=stop     (default) if any row breaks the rules, report them all
                     and import nothing
  --refused=skip     import the other rows and report the refused ones
  --no-tokens        leave the activity-logger's tokens out
  --batch N          events per stored batch (default 1000, at most 1000)
  --progress=auto    a progress line on a terminal (auto), always (on) or never (off)
`

// importer is the principal activityd import acts as: an admin, whose name
// signs the imported events' history ("import:activity-logger").
func importer(kind predecessor.Kind) domain.Principal {
	return domain.Principal{Name: "import:" + string(kind), Scopes: []domain.Scope{domain.ScopeAdmin}}
}

// importOptions is activityd import's command line.
type importOptions struct {
	kind     predecessor.Kind
	url      string
	dryRun   bool
	skip     bool // --refused=skip
	noTokens bool
	batch    int
	progress string
}

func parseImportArgs(args []string, stderr io.Writer) (importOptions, error) {
	o := importOptions{batch: 1000, progress: "auto"}
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	fs.BoolVar(&o.dryRun, "dry-run", false, "check and report; store nothing")
	refused := fs.String("refused", "stop", "stop or skip")
	fs.BoolVar(&o.noTokens, "no-tokens", false, "leave the tokens out")
	fs.IntVar(&o.batch, "batch", 1000, "events per batch")
	fs.StringVar(&o.progress, "progress", "auto", "auto, on or off")
	// Flags may come before, between or after the two arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		return o, usageError{fmt.Errorf("want a predecessor and a URL, got %d arguments\n\n%s", len(pos), importUsage)}
	}
	o.kind, o.url = predecessor.Kind(pos[0]), pos[1]
	if o.kind != predecessor.ActivityLogger && o.kind != predecessor.EventTracking {
		return o, usageError{fmt.Errorf("unknown predecessor %q: activity-logger or event-tracking", pos[0])}
	}
	switch *refused {
	case "stop":
	case "skip":
		o.skip = true
	default:
		return o, usageError{fmt.Errorf("--refused=%s: stop or skip", *refused)}
	}
	if o.batch < 1 || o.batch > app.MaxBatch {
		return o, usageError{fmt.Errorf("--batch=%d: between 1 and %d", o.batch, app.MaxBatch)}
	}
	if o.progress != "auto" && o.progress != "on" && o.progress != "off" {
		return o, usageError{fmt.Errorf("--progress=%s: auto, on or off", o.progress)}
	}
	return o, nil
}

// importCmd is activityd import.
func importCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	o, err := parseImportArgs(args, stderr)
	if err != nil {
		return err
	}
	src, err := predecessor.Open(ctx, o.kind, o.url)
	if err != nil {
		return err
	}
	defer src.Close()
	p, err := startProcess(ctx, cfg, "activityd-import", log, cliStoreNote("import", stderr))
	if err != nil {
		return err
	}
	defer p.close()

	// The import tells a cache shared with running replicas (Redis) what
	// it changed; an in-process cache of a running replica cannot hear it
	// and serves what it holds for at most CACHE_TTL.
	var cacheCfg app.CacheConfig
	if cfg.RedisURL != "" && cfg.CacheTTL > 0 {
		if cacheCfg, err = p.readCache(ctx); err != nil {
			return err
		}
	}
	opts := []app.Option{app.WithPrivacy(cfg.Privacy)}
	if cacheCfg.Cache != nil {
		opts = append(opts, app.WithCache(cacheCfg))
	}
	events := app.NewEvents(p.store, ports.SystemClock, cfg.Limits, opts...)
	counts := p.newCounts(nil, cacheCfg)
	run := &importRun{
		opts:    o,
		src:     src,
		imports: app.NewImports(p.store, events, counts, ports.SystemClock),
		tokens:  app.NewTokens(p.store, ports.SystemClock),
		who:     importer(o.kind),
		stdout:  stdout,
		report:  importReport{kind: o.kind, source: redactURL(o.url), dryRun: o.dryRun},
	}
	if o.progress == "on" || (o.progress == "auto" && isTerminal(stderr)) {
		run.progress = stderr
	}
	err = run.run(ctx)
	run.report.print(stdout)
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// importRun is one activityd import.
type importRun struct {
	opts     importOptions
	src      *predecessor.Source
	imports  *app.Imports
	tokens   *app.Tokens
	who      domain.Principal
	stdout   io.Writer
	progress io.Writer // nil: no progress line
	report   importReport
}

// errRefused stops an import that found refused rows under --refused=stop.
var errRefused = errors.New("rows break the rules; nothing was imported (fix them, or --refused=skip to import the rest)")

func (r *importRun) run(ctx context.Context) error {
	total, err := r.src.CountEvents(ctx)
	if err != nil {
		return err
	}
	r.report.total = total
	if r.opts.dryRun || !r.opts.skip {
		// A checking pass first: with --refused=stop nothing is stored
		// unless every row passes.
		if err := r.check(ctx); err != nil {
			return err
		}
		if r.opts.dryRun {
			return r.checkTokens(ctx)
		}
		if r.report.refused > 0 {
			r.report.stopped = true
			return errRefused
		}
		r.report.reset()
	}
	if r.opts.kind == predecessor.ActivityLogger {
		max, err := r.src.MaxLegacyID(ctx)
		if err != nil {
			return err
		}
		if err := r.imports.Reserve(ctx, r.who, max); err != nil {
			return err
		}
	}
	if err := r.store(ctx); err != nil {
		return err
	}
	if err := r.importTokens(ctx); err != nil {
		return err
	}
	if err := r.readCounts(ctx); err != nil {
		return err
	}
	done, open, err := r.imports.Recount(ctx, r.who)
	r.report.recounted, r.report.open = len(done), open
	return err
}

// past turns a predecessor's row into what the rules check, or says why it
// cannot be one.
func past(kind predecessor.Kind, row predecessor.Row) (domain.Past, error) {
	if row.Problem != "" {
		return domain.Past{}, errors.New(row.Problem)
	}
	id, err := eventID(kind, row.ID)
	if err != nil {
		return domain.Past{}, err
	}
	return domain.Past{ID: id, UserID: row.UserID, Action: row.Action, Status: row.Status,
		OccurredAt: row.OccurredAt, RecordedAt: row.RecordedAt, Metadata: row.Metadata}, nil
}

// eventID is the id an old event is stored under: its integer id as a
// legacy id of its system, or (event-tracking) its UUID as it was.
func eventID(kind predecessor.Kind, old string) (domain.ID, error) {
	system := domain.ActivityLogger
	if kind == predecessor.EventTracking {
		system = domain.EventTracking
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(old), 10, 64); err == nil {
		l := domain.LegacyID{System: system, N: n}
		if !l.Valid() {
			return domain.ID{}, fmt.Errorf("id: %d is not between 1 and %d", n, int64(domain.MaxLegacyID))
		}
		return l.ID(), nil
	}
	if kind == predecessor.EventTracking {
		if id, err := domain.ParseID(strings.TrimSpace(old)); err == nil && !id.IsZero() {
			return id, nil
		}
	}
	if kind == predecessor.EventTracking {
		return domain.ID{}, fmt.Errorf("id: %q is not a positive integer or a UUID", old)
	}
	return domain.ID{}, fmt.Errorf("id: %q is not a positive integer", old)
}

// check reads every row and applies the rules, storing nothing.
func (r *importRun) check(ctx context.Context) error {
	defer r.endProgress()
	return r.src.Events(ctx, func(row predecessor.Row) error {
		r.report.read++
		p, err := past(r.opts.kind, row)
		if err == nil {
			err = r.imports.Check(p)
		}
		if err != nil {
			r.report.refuse(row.Ref, err)
		} else {
			r.report.passed++
		}
		r.tick("checking")
		return nil
	})
}

// store reads every row again and stores them in batches.
func (r *importRun) store(ctx context.Context) error {
	defer r.endProgress()
	var (
		batch []domain.Past
		refs  []string
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := r.imports.Store(ctx, r.who, batch)
		if err != nil {
			return err
		}
		for i, x := range res {
			switch x.Outcome {
			case app.Imported:
				r.report.imported++
			case app.AlreadyPresent:
				r.report.present++
			case app.Taken:
				r.report.taken++
				r.report.refuse(refs[i], errors.New("id: already holds another event; nothing was overwritten"))
				r.report.refused-- // counted as taken, listed with the refusals
			case app.Refused:
				r.report.refuse(refs[i], x.Err)
			}
		}
		batch, refs = batch[:0], refs[:0]
		return nil
	}
	err := r.src.Events(ctx, func(row predecessor.Row) error {
		r.report.read++
		r.tick("importing")
		p, err := past(r.opts.kind, row)
		if err != nil {
			r.report.refuse(row.Ref, err)
			return nil
		}
		batch, refs = append(batch, p), append(refs, row.Ref)
		if len(batch) == r.opts.batch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// checkTokens counts what importing the tokens would do (a dry run).
func (r *importRun) checkTokens(ctx context.Context) error {
	if r.opts.noTokens {
		return nil
	}
	return r.src.Tokens(ctx, func(tok predecessor.Token) error {
		if _, err := tokenSpec(tok); err != nil {
			r.report.tokensRefused++
			r.report.refuse(tok.Ref, err)
			r.report.refused--
			return nil
		}
		r.report.tokensPassed++
		return nil
	})
}

// tokenSpec is the token an activity-logger DRF token becomes: bound to
// its user, reading and writing that user's events.
func tokenSpec(tok predecessor.Token) (app.TokenSpec, error) {
	if tok.Problem != "" {
		return app.TokenSpec{}, errors.New(tok.Problem)
	}
	user, ok := domain.ParseUserID(strings.TrimSpace(tok.UserID))
	if !ok {
		return app.TokenSpec{}, fmt.Errorf("user_id: must be a positive 64-bit integer (got %q)", tok.UserID)
	}
	return app.TokenSpec{
		Name:   fmt.Sprintf("activity-logger token of user %d", user),
		UserID: user,
		Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite},
	}, nil
}

// importTokens stores the activity-logger's tokens, hashed.
func (r *importRun) importTokens(ctx context.Context) error {
	if r.opts.noTokens {
		return nil
	}
	return r.src.Tokens(ctx, func(tok predecessor.Token) error {
		spec, err := tokenSpec(tok)
		if err == nil {
			var created bool
			created, err = importToken(ctx, r.tokens, spec, tok.Key)
			switch {
			case err == nil && created:
				r.report.tokensImported++
				return nil
			case err == nil:
				r.report.tokensPresent++
				return nil
			case errors.Is(err, domain.ErrUnavailable):
				return err
			}
		}
		r.report.tokensRefused++
		r.report.refuse(tok.Ref, err)
		r.report.refused--
		return nil
	})
}

// readCounts reads event-tracking's user_event_counts, for the report:
// activityd recounts from the events instead (docs/compat.md says why).
func (r *importRun) readCounts(ctx context.Context) error {
	return r.src.Counts(ctx, func(predecessor.Count) error {
		r.report.oldCounts++
		return nil
	})
}

// tick redraws the progress line every 1000 rows.
func (r *importRun) tick(phase string) {
	if r.progress == nil || r.report.read%1000 != 0 {
		return
	}
	pct := 100.0
	if r.report.total > 0 {
		pct = 100 * float64(r.report.read) / float64(r.report.total)
	}
	const width = 30
	filled := int(pct / 100 * width)
	filled = min(max(filled, 0), width)
	fmt.Fprintf(r.progress, "\r%-9s [%s%s] %d/%d rows (%.0f%%)", phase,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), r.report.read, r.report.total, pct)
}

func (r *importRun) endProgress() {
	if r.progress != nil {
		fmt.Fprint(r.progress, "\r\033[K")
	}
}

// importReport is the summary activityd import prints.
type importReport struct {
	kind    predecessor.Kind
	source  string
	dryRun  bool
	stopped bool // --refused=stop found refused rows

	total, read, passed, imported, present, taken, refused int64
	refusals                                               []string // the first maxListed
	tokensPassed, tokensImported, tokensPresent            int
	tokensRefused                                          int
	oldCounts                                              int
	recounted, open                                        int
}

// maxListed bounds how many refused rows the report names one by one.
const maxListed = 100

// refuse records a refused row and why.
func (rep *importReport) refuse(ref string, err error) {
	rep.refused++
	if len(rep.refusals) < maxListed {
		rep.refusals = append(rep.refusals, ref+": "+reason(err))
	}
}

// reason says why a row was refused: each field and what is wrong with it.
func reason(err error) string {
	var ve *domain.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) == 0 {
		return err.Error()
	}
	parts := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// reset forgets the checking pass before the storing one reads again.
func (rep *importReport) reset() {
	rep.read, rep.passed, rep.refused, rep.refusals = 0, 0, 0, nil
}

func (rep *importReport) print(w io.Writer) {
	mode := ""
	if rep.dryRun {
		mode = " (dry run: nothing stored)"
	}
	fmt.Fprintf(w, "activityd import %s from %s%s\n", rep.kind, rep.source, mode)
	line := func(name string, n int64) { fmt.Fprintf(w, "  %-22s %d\n", name, n) }
	line("events read", rep.read)
	switch {
	case rep.dryRun:
		line("would be imported", rep.passed)
	case rep.stopped:
		line("imported", 0)
	default:
		line("imported", rep.imported)
		line("already present", rep.present)
		line("id taken", rep.taken)
	}
	line("refused", rep.refused)
	if rep.kind == predecessor.ActivityLogger {
		if rep.dryRun {
			fmt.Fprintf(w, "  %-22s %d would be imported, %d refused\n", "tokens", rep.tokensPassed, rep.tokensRefused)
		} else {
			fmt.Fprintf(w, "  %-22s %d imported, %d already present, %d refused\n", "tokens",
				rep.tokensImported, rep.tokensPresent, rep.tokensRefused)
		}
	}
	if rep.kind == predecessor.EventTracking && !rep.dryRun && !rep.stopped {
		fmt.Fprintf(w, "  %-22s %d rows read, not imported: activityd counts from the events\n", "user_event_counts", rep.oldCounts)
	}
	if !rep.dryRun && !rep.stopped {
		fmt.Fprintf(w, "  %-22s %d recounted, %d still open (the counting job counts them when they close)\n",
			"counting windows", rep.recounted, rep.open)
	}
	if len(rep.refusals) > 0 {
		fmt.Fprintln(w, "refused:")
		for _, s := range rep.refusals {
			fmt.Fprintln(w, "  "+s)
		}
		if n := rep.refused + int64(rep.tokensRefused) + rep.taken - int64(len(rep.refusals)); n > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", n)
		}
	}
	if rep.stopped {
		fmt.Fprintln(w, "nothing was imported: every row must pass first (--refused=skip imports the others)")
	}
}

// importToken stores a DRF token's secret, hashed (app.Tokens.Import):
// created is false when an earlier run stored it.
func importToken(ctx context.Context, tokens *app.Tokens, spec app.TokenSpec, secret string) (created bool, err error) {
	_, created, err = tokens.Import(ctx, spec, secret)
	return created, err
}
