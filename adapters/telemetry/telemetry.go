// Package telemetry sets up OpenTelemetry for activityd (README: Monitoring):
// a MeterProvider whose metrics the OpenTelemetry Prometheus exporter
// serves on /metrics from a registry of its own, and a TracerProvider that
// exports spans over OTLP when the standard OTEL_EXPORTER_OTLP_* variables
// ask for it. Without an endpoint spans are still created (unexported), so
// log lines carry trace and span ids. OTEL_SDK_DISABLED=true turns both
// off (no-op providers).
//
// It also builds the application's own instruments (cache reads and
// errors) as hooks for app.CacheConfig, from the same MeterProvider.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// Config says what the service is; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override it.
type Config struct {
	ServiceName string // "" → "activityd"
	Version     string
	// Getenv reads the OTEL_EXPORTER_OTLP_* variables; nil → os.Getenv.
	// (The SDK's exporters read the remaining OTEL_* variables themselves.)
	Getenv func(string) string
}

// Telemetry is the process's meter and tracer providers.
type Telemetry struct {
	meters   metric.MeterProvider
	tracers  trace.TracerProvider
	registry *prometheus.Registry
	shutdown []func(context.Context) error
	// Exporter names the span exporter in use: "otlp/http", "otlp/grpc"
	// or "" (none).
	Exporter string
	// Disabled reports OTEL_SDK_DISABLED=true: no spans and no
	// OpenTelemetry metrics (the Go runtime's and the process's remain).
	Disabled bool
}

// New builds the providers and sets the global propagator to W3C Trace
// Context + Baggage. Call Shutdown when done.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "activityd"
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t := &Telemetry{registry: reg}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		// The specification's off switch: every provider a no-op.
		t.Disabled = true
		t.tracers = nooptrace.NewTracerProvider()
		t.meters = noopmetric.NewMeterProvider()
		return t, nil
	}

	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // after ours: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win
	}
	if cfg.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(cfg.Version)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	if res, err = resource.Merge(resource.Default(), res); err != nil {
		res = resource.Default()
	}

	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		var spans sdktrace.SpanExporter
		proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if strings.EqualFold(strings.TrimSpace(proto), "grpc") {
			spans, err = otlptracegrpc.New(ctx)
			t.Exporter = "otlp/grpc"
		} else {
			spans, err = otlptracehttp.New(ctx)
			t.Exporter = "otlp/http"
		}
		if err != nil {
			_ = meters.Shutdown(ctx)
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(spans))
	}
	tracers := sdktrace.NewTracerProvider(topts...)
	t.meters, t.tracers = meters, tracers
	t.shutdown = []func(context.Context) error{tracers.Shutdown, meters.Shutdown}
	return t, nil
}

// MeterProvider is where instruments are made.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meters }

// TracerProvider is where tracers are made.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracers }

// ClientTracerProvider is the tracer provider for client spans (SQL
// statements, Redis commands): TracerProvider when spans are exported,
// nil otherwise, so that drivers are not wrapped to make spans nobody
// sees. Server and job spans are made either way: their ids are in the
// log lines.
func (t *Telemetry) ClientTracerProvider() trace.TracerProvider {
	if t.Exporter == "" {
		return nil
	}
	return t.tracers
}

// MetricsHandler serves the metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops both providers: spans still buffered are
// exported, within ctx's deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
