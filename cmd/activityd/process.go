package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/ports"
)

// process is one run of a long-running command (serve, worker,
// scheduler): what each of them starts with, its telemetry and its store,
// and what to close when it ends.
type process struct {
	cfg     config
	log     *slog.Logger
	tel     *telemetry.Telemetry
	appTel  appTelemetry
	store   ports.Store
	closers []func()
}

// startProcess starts the telemetry of the process named service and
// opens the store DATABASE_URL names with it, after note has said which.
// Defer close at once: it undoes this and every step after it.
func startProcess(ctx context.Context, cfg config, service string, log *slog.Logger, note storeNote) (*process, error) {
	tel, appTel, stopTelemetry, err := startTelemetry(ctx, cfg, service, log)
	if err != nil {
		return nil, err
	}
	p := &process{cfg: cfg, log: log, tel: tel, appTel: appTel}
	p.onClose(stopTelemetry) // first, so it runs last: it flushes the spans and metrics of everything after it
	st, err := openStore(ctx, cfg, tel, note)
	if err != nil {
		p.close()
		return nil, err
	}
	p.store = st
	p.onClose(func() { st.Close() })
	return p, nil
}

// onClose makes close run f, before everything added so far: what
// started later stops first, as with defer.
func (p *process) onClose(f func()) { p.closers = append(p.closers, f) }

// close stops everything the process started, in the reverse order.
func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// readCache opens the read cache that CACHE_TTL and REDIS_URL ask for
// (openReadCache), counted by the process's telemetry and, when shared by
// replicas, kept coherent (cohere) until close.
func (p *process) readCache(ctx context.Context) (app.CacheConfig, error) {
	cc, closeCache, err := openReadCache(p.cfg, p.tel, p.log)
	if err != nil {
		return app.CacheConfig{}, err
	}
	p.onClose(closeCache)
	cc, stopCoherence := cohere(ctx, p.cfg, p.appTel.instrument(cc), p.store, p.log)
	p.onClose(stopCoherence)
	return cc, nil
}

// observeCountLag reports how far behind the counting windows are, until
// close: the job of the process that plans them (the scheduler, or serve
// running them in process).
func (p *process) observeCountLag(counts *app.Counts) error {
	unobserve, err := telemetry.ObserveCountLag(p.tel.MeterProvider(), counts.Lag)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	p.onClose(func() { _ = unobserve() })
	return nil
}
