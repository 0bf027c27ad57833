package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	asynqjobs "github.com/activityd/activityd/adapters/jobs/asynq"
	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/ports"
)

// countsConfig is the counting use cases' configuration, the same in
// every process that builds them (serve, worker, scheduler), so they plan
// the same windows and invalidate the same cache.
func countsConfig(cfg config, settle time.Duration, jobs ports.Jobs, cache app.CacheConfig, obs app.Observer) app.CountsConfig {
	return app.CountsConfig{
		Observer:   obs,
		Schedule:   cfg.CountScheduleParsed,
		MaxCatchup: cfg.CountMaxCatchup,
		Settle:     settle,
		Jobs:       jobs,
		Cache:      cache,
	}
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

// openAsynqJobs returns the asynq jobs (scheduler and enqueuer) over
// REDIS_URL, in the same URL forms as the cache.
func openAsynqJobs(cfg config, settle time.Duration, tel *telemetry.Telemetry, log *slog.Logger) (*asynqjobs.Jobs, error) {
	opts, err := rediscache.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return asynqjobs.New(asynqjobs.Config{
		Redis:    opts,
		Schedule: cfg.CountScheduleParsed,
		Settle:   settle,
		Logger:   log,
		// Each tick and enqueue is a span; its context travels in the
		// task's headers to the worker's span.
		TracerProvider: tel.TracerProvider(),
	})
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
	tel, appTel, stopTelemetry, err := startTelemetry(ctx, cfg, "activityd-scheduler", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	st, err := openStore(ctx, cfg, tel)
	if err != nil {
		return err
	}
	defer st.Close()
	settle := countSettle(cfg)
	jobs, err := openAsynqJobs(cfg, settle, tel, log)
	if err != nil {
		return err
	}
	defer jobs.Close()
	counts := app.NewCounts(st, ports.SystemClock, countsConfig(cfg, settle, jobs, app.CacheConfig{}, appTel.observer))
	// The scheduler plans the windows, so it reports how far behind they are.
	unobserve, err := telemetry.ObserveCountLag(tel.MeterProvider(), counts.Lag)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer unobserve()
	log.Info("activityd scheduler started", "schedule", cfg.CountSchedule, "max_catchup", cfg.CountMaxCatchup,
		"storage", redactURL(cfg.DatabaseURL), "version", version)
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
	tel, appTel, stopTelemetry, err := startTelemetry(ctx, cfg, "activityd-worker", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	st, err := openStore(ctx, cfg, tel)
	if err != nil {
		return err
	}
	defer st.Close()
	cacheCfg, closeCache, err := openReadCache(cfg, tel, log)
	if err != nil {
		return err
	}
	defer closeCache()
	cacheCfg = appTel.instrument(cacheCfg)
	cacheCfg, stopCoherence := cohere(ctx, cfg, cacheCfg, st, log)
	defer stopCoherence()
	// No ports.Jobs: the worker computes, it never enqueues.
	counts := app.NewCounts(st, ports.SystemClock, countsConfig(cfg, countSettle(cfg), nil, cacheCfg, appTel.observer))
	w, err := asynqjobs.NewWorker(asynqjobs.WorkerConfig{
		Redis:           opts,
		Concurrency:     cfg.WorkerConcurrency,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		TracerProvider:  tel.TracerProvider(),
	}, counts)
	if err != nil {
		return err
	}
	log.Info("activityd worker started", "storage", redactURL(cfg.DatabaseURL), "version", version)
	if err := w.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
