package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/app"
)

// startTelemetry starts the telemetry of one process: the OpenTelemetry
// providers, what the use cases report to, and the METRICS_ADDR and
// PPROF_ADDR listeners; service is its default service.name
// (OTEL_SERVICE_NAME overrides it). The returned function stops the
// listeners and flushes the spans and metrics still buffered: defer it
// first, so that it runs last, after everything that may still make spans
// has stopped.
func startTelemetry(ctx context.Context, cfg config, service string, log *slog.Logger) (*telemetry.Telemetry, appTelemetry, func(), error) {
	tel, err := telemetry.New(ctx, telemetry.Config{ServiceName: service, Version: version})
	if err != nil {
		return nil, appTelemetry{}, nil, fmt.Errorf("telemetry: %w", err)
	}
	flush := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown: spans or metrics may be lost", "err", err)
		}
	}
	if tel.Exporter != "" {
		log.Info("exporting traces", "exporter", tel.Exporter)
	}
	appTel, err := newAppTelemetry(tel, cfg)
	if err != nil {
		flush()
		return nil, appTelemetry{}, nil, err
	}
	stopMetrics, err := serveMetrics(cfg, tel, log)
	if err != nil {
		flush()
		return nil, appTelemetry{}, nil, err
	}
	stopPprof, err := servePprof(cfg, log)
	if err != nil {
		stopMetrics()
		flush()
		return nil, appTelemetry{}, nil, err
	}
	return tel, appTel, func() { stopPprof(); stopMetrics(); flush() }, nil
}

// appTelemetry is what the use cases report to: the observer (events,
// transitions, window computations) and the cache hooks.
type appTelemetry struct {
	observer *telemetry.Observer
	cache    *telemetry.CacheHooks
}

func newAppTelemetry(tel *telemetry.Telemetry, cfg config) (appTelemetry, error) {
	o, err := telemetry.NewObserver(tel.MeterProvider(), cfg.Limits.Actions)
	if err != nil {
		return appTelemetry{}, fmt.Errorf("telemetry: %w", err)
	}
	c, err := telemetry.NewCacheHooks(tel.MeterProvider())
	if err != nil {
		return appTelemetry{}, fmt.Errorf("telemetry: %w", err)
	}
	return appTelemetry{observer: o, cache: c}, nil
}

// instrument sets cc's hooks to count cache reads and errors.
func (a appTelemetry) instrument(cc app.CacheConfig) app.CacheConfig {
	if cc.Cache != nil {
		cc.Observe = func(view string, r app.CacheResult) { a.cache.Observe(view, string(r)) }
		cc.OnError = a.cache.OnError
	}
	return cc
}

// serveMetrics serves the metrics at GET /metrics on METRICS_ADDR, in the
// background, and returns the function that stops it. Without
// METRICS_ADDR it serves nothing.
func serveMetrics(cfg config, tel *telemetry.Telemetry, log *slog.Logger) (stop func(), err error) {
	if cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.MetricsHandler())
	return sideListener{
		variable:     "METRICS_ADDR",
		addr:         cfg.MetricsAddr,
		handler:      mux,
		writeTimeout: 30 * time.Second,
		started:      "serving metrics",
		attrs:        []any{"path", "/metrics"},
	}.serve(log)
}
