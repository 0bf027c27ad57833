package rediscache

import (
	"context"
	"slices"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// instrumentTracing adds go-redis's OpenTelemetry tracing hook to client:
// one client span per command or pipeline (named after the command, e.g.
// "get", or "redis.pipeline evalsha"), and one per dial, with db.system
// "redis" and the server's address; errors other than a miss (redis.Nil)
// are recorded on the span, which is then marked Error.
//
// Options, against the hook's defaults:
//   - only within a span (parentOnly): redisotel has no option for it, and
//     its filters see the command, not the context. Commands outside any
//     span would each start a trace of one span (go-redis's background
//     dials, a command a caller ran with a bare context), noise that can
//     be told from nothing;
//   - no spans for setting up a connection (HELLO, AUTH, SELECT, CLIENT
//     SETNAME and SETINFO...), which go-redis runs through the hooks
//     within the first command on a new connection: the cache itself
//     never sends them, they would show as children of that command, and
//     a server older than 7.2 refuses CLIENT SETINFO, which go-redis
//     ignores but the span would show as an error (the time they take
//     stays in the command's span; the hook's default filter, of AUTH
//     only, is part of this one);
//   - no db.statement: it would hold the whole command, so every cached
//     value (up to megabytes) and the keys, which name users;
//   - no caller attributes: the caller is always this package, and
//     finding it walks the stack on every command.
//
// The hook's metrics (redisotel.InstrumentMetrics) are left out: the app
// measures its cache reads and errors itself.
func instrumentTracing(client redis.UniversalClient, tp trace.TracerProvider) {
	err := redisotel.InstrumentTracing(client,
		redisotel.WithTracerProvider(parentOnly{tp}),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
		redisotel.WithCommandFilter(connectionSetup),
		redisotel.WithCommandsFilter(func(cmds []redis.Cmder) bool { return slices.ContainsFunc(cmds, connectionSetup) }),
	)
	if err != nil {
		// Only for a client type that NewUniversalClient never makes;
		// the cache works untraced.
		otel.Handle(err)
	}
}

// connectionSetup reports whether cmd is one that go-redis sends to set
// up a new connection (or, for AUTH, to renew its credentials).
func connectionSetup(cmd redis.Cmder) bool {
	switch cmd.Name() { // lower case
	case "hello", "auth", "select", "readonly", "client":
		return true
	}
	return redisotel.DefaultCommandFilter(cmd)
}

// parentOnly is a TracerProvider whose tracers start spans only under a
// span already in the context (local or remote); elsewhere they start
// nothing and return the context as it is.
type parentOnly struct{ trace.TracerProvider }

func (p parentOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return parentOnlyTracer{p.TracerProvider.Tracer(name, opts...)}
}

type parentOnlyTracer struct{ trace.Tracer }

func (t parentOnlyTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// SpanFromContext's span: a no-op span here, which records
		// nothing and whose End does nothing.
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Tracer.Start(ctx, name, opts...)
}
