package main

import (
	"context"
	"fmt"
	"log/slog"

	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	asynqjobs "github.com/activityd/activityd/adapters/jobs/asynq"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/ports"
)

// newCounts builds the counting use cases over the process's store,
// configured the same in every process that builds them (serve, worker,
// scheduler), so they plan the same windows and invalidate the same
// cache. jobs is nil where nothing is enqueued (the worker); cache is the
// zero CacheConfig where nothing is cached (the scheduler).
func (p *process) newCounts(jobs ports.Jobs, cache app.CacheConfig) *app.Counts {
	return app.NewCounts(p.store, ports.SystemClock, app.CountsConfig{
		Observer:   p.appTel.observer,
		Schedule:   p.cfg.CountScheduleParsed,
		MaxCatchup: p.cfg.CountMaxCatchup,
		Settle:     countSettle(p.cfg),
		Jobs:       jobs,
		Cache:      cache,
	})
}

// needRedis refuses to run a subcommand that works over the asynq queue
// without REDIS_URL.
func needRedis(cfg config, cmd string) error {
	if cfg.RedisURL == "" {
		return usageError{fmt.Errorf("REDIS_URL is not set: `activityd %s` works over a task queue in Redis "+
			"(without Redis, `activityd serve` runs the counting job in process)", cmd)}
	}
	return nil
}

// asynqJobs opens the asynq jobs (scheduler and enqueuer) over
// REDIS_URL, in the same URL forms as the cache, until close.
func (p *process) asynqJobs() (*asynqjobs.Jobs, error) {
	opts, err := rediscache.ParseURL(p.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	jobs, err := asynqjobs.New(asynqjobs.Config{
		Redis:    opts,
		Schedule: p.cfg.CountScheduleParsed,
		Settle:   countSettle(p.cfg),
		Logger:   p.log,
		// Each tick and enqueue is a span; its context travels in the
		// task's headers to the worker's span.
		TracerProvider: p.tel.TracerProvider(),
	})
	if err != nil {
		return nil, err
	}
	p.onClose(func() { jobs.Close() })
	return jobs, nil
}

// scheduler runs `activityd scheduler` until ctx is cancelled
// (SIGINT/SIGTERM): at each tick of COUNT_SCHEDULE it plans the windows
// due (over the watermark in storage) and enqueues one task per window.
// Several schedulers may run: a window's task id is derived from the
// window, so it is enqueued once.
func scheduler(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := needRedis(cfg, "scheduler"); err != nil {
		return err
	}
	p, err := startProcess(ctx, cfg, "activityd-scheduler", log, logStoreNote(log))
	if err != nil {
		return err
	}
	defer p.close()
	jobs, err := p.asynqJobs()
	if err != nil {
		return err
	}
	counts := p.newCounts(jobs, app.CacheConfig{})
	// The scheduler plans the windows, so it reports how far behind they are.
	if err := p.observeCountLag(counts); err != nil {
		return err
	}
	log.Info("activityd scheduler started", "schedule", cfg.CountSchedule, "max_catchup", cfg.CountMaxCatchup,
		"storage", describeStore(cfg.DatabaseURL).Name, "version", version)
	if err := jobs.Run(ctx, counts); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// worker runs `activityd worker` until ctx is cancelled (SIGINT/SIGTERM):
// it computes the windows the schedulers and API replicas enqueue,
// WORKER_CONCURRENCY at once, and at shutdown lets the ones in flight
// finish within SHUTDOWN_TIMEOUT (the others go back to the queue).
// Its cache configuration is serve's, so a computed window invalidates
// the count reads cached by every API replica.
func worker(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := needRedis(cfg, "worker"); err != nil {
		return err
	}
	opts, err := rediscache.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	p, err := startProcess(ctx, cfg, "activityd-worker", log, logStoreNote(log))
	if err != nil {
		return err
	}
	defer p.close()
	cacheCfg, err := p.readCache(ctx)
	if err != nil {
		return err
	}
	// No ports.Jobs: the worker computes, it never enqueues.
	counts := p.newCounts(nil, cacheCfg)
	hooks, err := p.newWebhooks(p.store, nil)
	if err != nil {
		return err
	}
	w, err := asynqjobs.NewWorker(asynqjobs.WorkerConfig{
		Webhooks: hooks,
		// Due retries and new tasks are looked for every FEED_POLL (asynq's
		// defaults, 5 s and 1 s, would stretch a webhook's 1 s backoff).
		PollInterval:    cfg.FeedPoll,
		Redis:           opts,
		Concurrency:     cfg.WorkerConcurrency,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		TracerProvider:  p.tel.TracerProvider(),
	}, counts)
	if err != nil {
		return err
	}
	log.Info("activityd worker started", "storage", describeStore(cfg.DatabaseURL).Name, "version", version)
	if err := w.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
