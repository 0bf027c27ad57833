package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/activityd/activityd/adapters/auth"
	memcache "github.com/activityd/activityd/adapters/cache/memory"
	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/http/web"
	asynqjobs "github.com/activityd/activityd/adapters/jobs/asynq"
	"github.com/activityd/activityd/adapters/jobs/inprocess"
	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/ports"
)

// maxHeaderBytes bounds a request's header block (Go's default is 1 MiB):
// 128 unauthenticated requests of ~1 MB headers took the process to 467 MB
// (issue 13). 64 KiB holds any token, JWT or cookie a client sends; more
// is answered 431.
const maxHeaderBytes = 64 << 10

// inProcessCacheBytes bounds the in-process read cache: a third of Go's
// share of MEMORY_LIMIT (gc.go), at least 8 MiB (a cached value may use an
// eighth of the bound, and a list page of 1000 events is about 300 KB).
func inProcessCacheBytes(cfg config) int64 { return max(cfg.Memory.CacheBytes, 8<<20) }

// serve runs the HTTP API until ctx is cancelled (SIGINT/SIGTERM), then
// stops accepting connections, lets in-flight requests finish within
// SHUTDOWN_TIMEOUT and closes the store.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if err := checkAuthMode(cfg, log); err != nil {
		return err
	}
	p, err := startProcess(ctx, cfg, "activityd", log, logStoreNote(log))
	if err != nil {
		return err
	}
	defer p.close() // after the server has stopped: what the use cases need, the store, the telemetry
	uc, err := p.useCases(ctx)
	if err != nil {
		return err
	}
	if err := bootstrapToken(ctx, cfg, uc.tokens, stdout, log); err != nil {
		return err
	}
	p.maintainStore(ctx, uc.events)
	handler, err := p.apiHandler(ctx, uc)
	if err != nil {
		return err
	}
	srv, ln, err := listenAPI(cfg, handler, log)
	if err != nil {
		return err
	}
	return runAPI(ctx, srv, ln, cfg.ShutdownTimeout, log)
}

// checkAuthMode refuses AUTH_MODE=none on an address other hosts reach,
// and warns about it on a loopback one.
func checkAuthMode(cfg config, log *slog.Logger) error {
	if cfg.AuthMode != "none" {
		return nil
	}
	if err := checkLoopback(cfg.HTTPAddr); err != nil {
		return usageError{err}
	}
	log.Warn("AUTH_MODE=none: every request acts as an admin; for local experiments only")
	return nil
}

// useCases are the application's use cases as serve wires them, and the
// read cache they share (for /readyz).
type useCases struct {
	events *app.Events
	counts *app.Counts
	tokens *app.Tokens
	feed   *app.Feed
	hooks  *app.Webhooks
	ev     *app.Evidence
	cache  ports.Cache // nil: none
}

// useCases builds serve's use cases over the process's store, with the
// read cache and the counting job.
func (p *process) useCases(ctx context.Context) (useCases, error) {
	cacheCfg, err := p.readCache(ctx)
	if err != nil {
		return useCases{}, err
	}
	feed := app.NewFeed(p.store, p.cfg.FeedPoll)
	opts := []app.Option{app.WithObserver(p.appTel.observer), app.WithLegacyIDs(p.store), app.NotifyWrites(feed.Notify),
		app.WithPrivacy(p.cfg.Privacy), app.ForgetErasures(feed.Erased)}
	if cacheCfg.Cache != nil {
		opts = append(opts, app.WithCache(cacheCfg))
	}
	events := app.NewEvents(p.store, ports.SystemClock, p.cfg.Limits, opts...)
	counts, err := p.startCounting(ctx, cacheCfg)
	if err != nil {
		return useCases{}, err
	}
	tokens := app.NewTokens(p.store, ports.SystemClock)
	hooks, err := p.startWebhooks(ctx, feed)
	if err != nil {
		return useCases{}, err
	}
	ev, err := p.newEvidence(ctx)
	if err != nil {
		return useCases{}, err
	}
	if err := p.startCheckpoints(ctx, ev); err != nil {
		return useCases{}, err
	}
	return useCases{events: events, counts: counts, tokens: tokens, feed: feed, hooks: hooks, ev: ev, cache: cacheCfg.Cache}, nil
}

// startWebhooks builds the webhook use cases and starts their delivery
// until close: in this process (the dispatcher), or, with REDIS_URL, as
// asynq tasks that `activityd worker` runs (this process enqueues them).
func (p *process) startWebhooks(ctx context.Context, feed *app.Feed) (*app.Webhooks, error) {
	hooks, err := p.newWebhooks(feed, feed.Changed)
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context) { hooks.Run(ctx) }
	runner := "in-process"
	if p.cfg.RedisURL != "" {
		opts, err := rediscache.ParseURL(p.cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		d, err := asynqjobs.NewDeliveries(asynqjobs.DeliveriesConfig{Redis: opts, Wake: feed.Changed, Poll: p.cfg.FeedPoll, Logger: p.log})
		if err != nil {
			return nil, err
		}
		p.onClose(func() { _ = d.Close() })
		run = func(ctx context.Context) { _ = d.Run(ctx, hooks) }
		runner = "asynq"
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(runCtx)
	}()
	p.onClose(func() { stop(); <-done }) // before the store closes
	p.log.Debug("webhook deliveries started", "runner", runner)
	return hooks, nil
}

// startCounting builds the counting use cases and starts their job. With
// REDIS_URL, `activityd scheduler` plans it and `activityd worker`
// computes it, and serve only enqueues an admin's "compute now"; without
// Redis it runs here, in process, until close. Several replicas each
// running it in process compute the same windows: wasted work, never a
// wrong count (a window's computation is idempotent and serialised).
func (p *process) startCounting(ctx context.Context, cacheCfg app.CacheConfig) (*app.Counts, error) {
	cfg, log := p.cfg, p.log
	var jobs ports.Jobs
	var runner *inprocess.Runner
	if cfg.RedisURL != "" {
		aj, err := p.asynqJobs()
		if err != nil {
			return nil, err
		}
		jobs = aj
	} else {
		runner = inprocess.New(inprocess.Config{Schedule: cfg.CountScheduleParsed, Settle: countSettle(cfg),
			StopGrace: cfg.ShutdownTimeout, Logger: log, TracerProvider: p.tel.TracerProvider()})
		jobs = runner
	}
	counts := p.newCounts(jobs, cacheCfg)
	if runner == nil {
		log.Info("counting job left to `activityd scheduler` and `activityd worker` (REDIS_URL is set)",
			"runner", "asynq", "queue", asynqjobs.Queue)
		return counts, nil
	}
	// Counting runs here, so its lag is this process's to report.
	if err := p.observeCountLag(counts); err != nil {
		return nil, err
	}
	jobsCtx, stopJobs := context.WithCancel(ctx)
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		_ = runner.Run(jobsCtx, counts)
	}()
	p.onClose(func() { stopJobs(); <-jobsDone }) // before the store closes
	log.Info("counting job scheduled", "schedule", cfg.CountSchedule, "max_catchup", cfg.CountMaxCatchup,
		"runner", "in-process")
	return counts, nil
}

// newWebhooks builds the webhook use cases over the process's store,
// reading changes from changes (serve's app.Feed, whose tail its readers
// share; the store elsewhere), delivering through the SSRF guard
// (WEBHOOK_ALLOW) with the /v1 feed's rendering of changes.
func (p *process) newWebhooks(changes ports.Changes, wake func() <-chan struct{}) (*app.Webhooks, error) {
	cfg := p.cfg
	guard, err := webhook.NewGuard(cfg.WebhookAllow) // checked by loadConfig
	if err != nil {
		return nil, err
	}
	sender := webhook.NewSender(guard.Client(cfg.WebhookTimeout), httpapi.AppendChange, "activityd/"+version)
	return app.NewWebhooks(p.store, changes, wake, app.WebhooksConfig{
		Sender: sender,
		CheckURL: func(u string) error {
			if err := guard.CheckURL(u, cfg.WebhookAllowHTTP); err != nil {
				return fmt.Errorf("%w (WEBHOOK_ALLOW names the private targets allowed, WEBHOOK_ALLOW_HTTP=true allows http)", err)
			}
			return nil
		},
		NewSecret:   webhook.NewSecret,
		Batch:       cfg.WebhookBatch,
		MaxFailures: cfg.WebhookMaxFailures,
		Poll:        cfg.FeedPoll,
		Logger:      p.log,
	}), nil
}

// bootstrapToken creates the first admin token with AUTH_MODE=token when
// none exists: BOOTSTRAP_ADMIN_TOKEN, or a new secret shown once on
// stdout.
func bootstrapToken(ctx context.Context, cfg config, tokens *app.Tokens, stdout io.Writer, log *slog.Logger) error {
	if cfg.AuthMode != "token" {
		return nil
	}
	secret, created, err := tokens.Bootstrap(ctx, cfg.BootstrapToken)
	if err != nil {
		return err
	}
	if created && cfg.BootstrapToken == "" {
		// Shown once, on standard output and never in a log line.
		fmt.Fprintf(stdout, "\nactivityd: no API token existed, so an admin token was created.\n"+
			"It is shown this once; keep it somewhere safe:\n\n    %s\n\n", secret)
	}
	if created {
		log.Info("bootstrap admin token created")
	}
	return nil
}

// maintainStore runs the store's upkeep (maintain) in the background
// until ctx ends, when the store has any.
func (p *process) maintainStore(ctx context.Context, events *app.Events) {
	if m, ok := p.store.(ports.Maintainer); ok {
		go maintain(ctx, m, p.cfg.Retention, events, p.log)
	} else if p.cfg.Retention > 0 {
		p.log.Warn("RETENTION is set but this store has no retention; nothing will be dropped", "storage", describeStore(p.cfg.DatabaseURL).Name)
	}
}

// apiHandler builds the HTTP API over uc, with its authentication (JWT
// when configured, then API tokens), limits and telemetry.
func (p *process) apiHandler(ctx context.Context, uc useCases) (http.Handler, error) {
	cfg, log := p.cfg, p.log
	jwtAuth, err := p.openJWT(ctx)
	if err != nil {
		return nil, err
	}
	rateLimiter, closeRateLimiter, err := openRateLimiter(cfg, p.tel, log) // limits.go
	if err != nil {
		return nil, err
	}
	p.onClose(closeRateLimiter)
	logClientSettings(cfg, log)
	return httpapi.NewServer(httpapi.Config{
		Events:       uc.events,
		Counts:       uc.counts,
		Feed:         uc.feed,
		Webhooks:     uc.hooks,
		Evidence:     uc.ev,
		MaxFollowers: cfg.MaxFollowers,
		Auth:         auth.Chain(jwtAuth, uc.tokens),
		Storage:      p.store,
		Cache:        cachePinger(uc.cache),
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		MaxInFlight:  cfg.MaxInFlight,
		AuthDisabled: cfg.AuthMode == "none",
		UI:           web.Handler(),

		BodyMemoryBudget: cfg.BodyMemoryBudget,

		TrustedProxies: cfg.TrustedProxies,
		AuthFailures:   cfg.authFailureLimit(),
		RateLimiter:    rateLimiter,
		RateLimit:      cfg.rateLimit(),

		CORS:      cfg.CORS,
		Anonymous: cfg.AnonymousTracking,

		TracerProvider: p.tel.TracerProvider(),
		MeterProvider:  p.tel.MeterProvider(),
		Metrics:        apiMetrics(cfg, p.tel),
	}), nil
}

// openJWT returns the JWT authentication that JWT_SECRET or JWT_JWKS_URL
// configure, until close; nil when neither is set.
func (p *process) openJWT(ctx context.Context) (*auth.JWT, error) {
	cfg := p.cfg
	if cfg.JWTSecret == "" && cfg.JWTJWKSURL == "" {
		return nil, nil
	}
	jwtAuth, err := auth.NewJWT(ctx, auth.JWTConfig{
		Secret:   []byte(cfg.JWTSecret),
		JWKSURL:  cfg.JWTJWKSURL,
		Issuer:   cfg.JWTIssuer,
		Audience: cfg.JWTAudience,
		Leeway:   cfg.JWTLeeway,
		Logger:   p.log,
	})
	if err != nil {
		return nil, fmt.Errorf("JWT authentication: %w", err)
	}
	p.onClose(jwtAuth.Close)
	return jwtAuth, nil
}

// listenAPI returns the API's HTTP server and its listener on HTTP_ADDR:
// over TLS, with HSTS, when TLS_CERT_FILE is set, and behind the framing
// guard.
func listenAPI(cfg config, handler http.Handler, log *slog.Logger) (*http.Server, net.Listener, error) {
	srv := &http.Server{
		Handler:           handler,
		ConnContext:       httpapi.FramingContext, // the framing guard's state, for each request (GuardFraming below)
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			ln.Close()
			return nil, nil, err
		}
		ln, scheme = tls.NewListener(ln, certs.tlsConfig()), "https"
		srv.Handler = withHSTS(srv.Handler)
	}
	// A request whose end is ambiguous (Content-Length with
	// Transfer-Encoding, …) is refused and its connection closed, so that
	// nothing after it is read as a request (smuggling). Over TLS the
	// guard reads the plaintext.
	ln = httpapi.GuardFraming(ln)
	log.Info("activityd listening", "addr", ln.Addr().String(), "scheme", scheme, "storage", describeStore(cfg.DatabaseURL).Name, "version", version)
	return srv, ln, nil
}

// runAPI serves srv on ln until ctx is cancelled, then stops accepting
// connections and lets in-flight requests finish within timeout.
func runAPI(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// apiMetrics is the /metrics handler of the API port: none when
// METRICS_ADDR gives metrics a listener of their own.
func apiMetrics(cfg config, tel *telemetry.Telemetry) http.Handler {
	if cfg.MetricsAddr != "" {
		return nil
	}
	return tel.MetricsHandler()
}

// countSettle is how long after a window closes it is counted: longer
// than a write can take between stamping recorded_at and committing (the
// store's connect and statement timeouts), so no late commit is missed.
// COUNT_SETTLE overrides it (tests use a short one; a value below the
// time a write can take risks leaving a late commit out of its window
// until the window is computed again).
func countSettle(cfg config) time.Duration {
	if cfg.CountSettle > 0 {
		return cfg.CountSettle
	}
	d := cfg.DBConnectTimeout + cfg.DBStatementTimeout + time.Second
	return max(d, 15*time.Second)
}

// maintainEvery is how often the store's upkeep runs (partitions ahead,
// retention). It is cheap when there is nothing to do.
const maintainEvery = time.Hour

// maintain runs the store's upkeep now and every maintainEvery until ctx
// ends. Failures are logged and retried at the next tick: partitions are
// made months ahead, so one missed run costs nothing.
func maintain(ctx context.Context, m ports.Maintainer, retention time.Duration, events *app.Events, log *slog.Logger) {
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		dropped, err := m.Maintain(ctx, time.Now(), retention)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("storage maintenance failed; retrying in an hour", "err", err)
		case dropped > 0:
			events.InvalidateAll(ctx)
			log.Info("retention dropped old data", "dropped", dropped, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// openReadCache returns the read-cache configuration CACHE_TTL and
// REDIS_URL ask for: Redis when REDIS_URL is set, else in process; the
// zero CacheConfig (no caching) when CACHE_TTL=0.
func openReadCache(cfg config, tel *telemetry.Telemetry, log *slog.Logger) (app.CacheConfig, func(), error) {
	if cfg.CacheTTL <= 0 {
		return app.CacheConfig{}, func() {}, nil
	}
	if cfg.RedisURL == "" {
		c := memcache.New(memcache.Options{MaxEntries: cfg.CacheMaxEntries, MaxBytes: inProcessCacheBytes(cfg)})
		return app.CacheConfig{Cache: c, TTL: cfg.CacheTTL, Logger: log}, c.Close, nil
	}
	c, err := rediscache.Open(cfg.RedisURL, rediscache.Options{KeyPrefix: cfg.CachePrefix, Timeout: cfg.CacheTimeout,
		TracerProvider: tel.ClientTracerProvider()})
	if err != nil {
		return app.CacheConfig{}, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return app.CacheConfig{Cache: c, TTL: cfg.CacheTTL, Logger: log}, func() { c.Close() }, nil
}

// cohere keeps a cache shared by replicas (Redis) fresh on every replica
// through cache faults, witnessed by the store (app.Coherence), and
// returns the function that stops it. The in-process cache is one
// process's alone and needs none.
func cohere(ctx context.Context, cfg config, cc app.CacheConfig, st ports.Store, log *slog.Logger) (app.CacheConfig, func()) {
	ledger, ok := st.(ports.CacheLedger)
	if cc.Cache == nil || cfg.RedisURL == "" || !ok {
		return cc, func() {}
	}
	cc.Coherence = app.NewCoherence(cc.Cache, ledger, app.CoherenceConfig{
		// Records outlive every value cached before them.
		Keep:    cfg.CacheTTL + time.Minute,
		Logger:  log,
		OnError: cc.OnError,
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cc.Coherence.Run(ctx)
	}()
	return cc, func() { cancel(); <-done }
}

// cachePinger returns the cache for /readyz to report, when it can be
// pinged (Redis; the in-process cache cannot fail).
func cachePinger(c ports.Cache) httpapi.Pinger {
	if p, ok := c.(httpapi.Pinger); ok {
		return p
	}
	return nil
}

// redisLog sends go-redis's own log lines (one per failed dial, a flood
// during an outage) to slog at debug level; the cache reports outages
// itself, rate-limited.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
