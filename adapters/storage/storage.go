// Package storage is the registry of storage adapters, in the manner of
// database/sql drivers: each adapter registers an Opener for its URL
// schemes from an init function, and the composition root opens whatever
// DATABASE_URL names after importing the adapters it wants.
package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/activityd/activityd/ports"
)

// Options tune a store; zero values mean the adapter's defaults.
type Options struct {
	MaxOpenConns     int           // connection pool size
	MaxIdleConns     int           // idle connections kept
	ConnMaxLifetime  time.Duration // recycle connections after this long
	StatementTimeout time.Duration // abandon a statement after this long
	ConnectTimeout   time.Duration // give up connecting after this long

	// Unchained: changes are recorded without links in their users' hash
	// chains (EVIDENCE_CHAINS=false); verification reports them as
	// unchained. The zero value chains, as issue 18 promises by default.
	Unchained bool

	// TracerProvider, when set, makes every SQL statement of the SQL
	// stores a client span (see TraceSQL): a child of the span in the
	// statement's context, and none when the context has no span, so
	// background work does not flood the traces. nil: the pools are not
	// wrapped at all, at no cost; nor with a no-op provider (the
	// go.opentelemetry.io/otel/trace/noop one, as OTEL_SDK_DISABLED gives).
	TracerProvider trace.TracerProvider
	// MeterProvider, when set, receives the connection pool metrics of
	// the SQL stores (see ObservePool). nil: none.
	MeterProvider metric.MeterProvider
}

// Traced returns the TracerProvider to trace SQL with, and false when
// there is none or it is a no-op: then nothing is wrapped.
func (o Options) Traced() (trace.TracerProvider, bool) {
	switch o.TracerProvider.(type) {
	case nil, nooptrace.TracerProvider, *nooptrace.TracerProvider:
		return nil, false
	}
	return o.TracerProvider, true
}

// Opener opens a store for a URL of one of the schemes it registered.
type Opener func(ctx context.Context, url string, opts Options) (ports.Store, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes an adapter available under a URL scheme (without the
// colon). It panics if the scheme is taken, like sql.Register.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if open == nil {
		panic("storage: Register opener is nil")
	}
	if _, dup := openers[scheme]; dup {
		panic("storage: Register called twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens the store the URL names, chosen by its scheme.
func Open(ctx context.Context, url string, opts Options) (ports.Store, error) {
	scheme, _, ok := strings.Cut(url, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("storage URL %q has no scheme (known: %s)", url, strings.Join(Schemes(), ", "))
	}
	mu.RLock()
	open := openers[strings.ToLower(scheme)]
	mu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("storage URL scheme %q is not known (known: %s)", scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, url, opts)
}
