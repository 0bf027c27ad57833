package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// setting is one environment variable activityd reads: the one list that
// `activityd help config` and `activityd config` print, and that a test
// holds loadConfig to (every variable it reads is here, and every one here
// is read).
type setting struct {
	Name string
	// Aliases are names accepted too (the predecessors'); Name wins.
	Aliases []string
	Group   string
	Default string // as a person reads it
	Meaning string
	// Secret: activityd config says only whether it is set.
	Secret bool
	// Value renders the value in effect from the loaded configuration;
	// nil: the variable as set, else Default (a variable read by another
	// part of the process: the OpenTelemetry SDK).
	Value func(config) string
}

// names is the setting's name and aliases.
func (s setting) names() []string { return append([]string{s.Name}, s.Aliases...) }

// The groups of settings, in the order printed.
const (
	groupServer    = "Server"
	groupStore     = "Storage"
	groupAuth      = "Authentication"
	groupLimits    = "Limits and abuse"
	groupClients   = "Browser clients and migration"
	groupCounting  = "Scheduled counting"
	groupCache     = "Cache and Redis"
	groupFeed      = "Change feed and webhooks"
	groupEvidence  = "Evidence: hash chains and checkpoints"
	groupOps       = "Logs, metrics and profiling"
	groupMemory    = "Memory"
	groupTelemetry = "OpenTelemetry (read by the OpenTelemetry SDK; any other OTEL_* variable of the specification too)"
)

var settingGroups = []string{groupServer, groupStore, groupAuth, groupLimits, groupClients, groupCounting, groupCache, groupFeed, groupEvidence, groupOps, groupMemory, groupTelemetry}

func durationValue(d time.Duration) string { return d.String() }

func listValue(vs []string) string {
	if len(vs) == 0 {
		return "none"
	}
	return strings.Join(vs, ",")
}

func durationOr(d time.Duration, zero string) string {
	if d == 0 {
		return zero
	}
	return d.String()
}

func intValue[N int | int64](n N) string { return strconv.FormatInt(int64(n), 10) }

func prefixesValue(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func bytesValue(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n, 10)
}

// settings lists every variable activityd reads. Keep it in step with
// loadConfig (TestSettingsListEveryVariable checks) and with README.md's
// Configuration table.
var settings = []setting{
	// Server
	{Name: "HTTP_ADDR", Aliases: []string{"HTTP_PORT"}, Group: groupServer, Default: ":8080",
		Meaning: "listen address of the API (HTTP_PORT=9090 means :9090)",
		Value:   func(c config) string { return c.HTTPAddr }},
	{Name: "SHUTDOWN_TIMEOUT", Group: groupServer, Default: "15s",
		Meaning: "how long SIGTERM waits for the requests in flight",
		Value:   func(c config) string { return durationValue(c.ShutdownTimeout) }},
	{Name: "TLS_CERT_FILE", Group: groupServer, Default: "unset",
		Meaning: "serve the API over HTTPS with this PEM certificate chain (with TLS_KEY_FILE; reloaded when replaced)",
		Value:   func(c config) string { return c.TLSCertFile }},
	{Name: "TLS_KEY_FILE", Group: groupServer, Default: "unset",
		Meaning: "the PEM key of TLS_CERT_FILE (both or neither)",
		Value:   func(c config) string { return c.TLSKeyFile }},

	// Storage
	{Name: "DATABASE_URL", Aliases: []string{"DB_URL"}, Group: groupStore, Default: "sqlite:./data/activity.db",
		Meaning: "the store: memory:, sqlite:PATH (relative to the working directory), postgres://USER:PASSWORD@HOST/DB. " +
			"Every command says at start which store it opens",
		Value: func(c config) string { return describeStore(c.DatabaseURL).Name }},
	{Name: "DB_MAX_OPEN_CONNS", Group: groupStore, Default: "0 (the store's own)",
		Meaning: "connections open at most", Value: func(c config) string { return intValue(c.DBMaxOpenConns) }},
	{Name: "DB_MAX_IDLE_CONNS", Group: groupStore, Default: "0 (the store's own)",
		Meaning: "idle connections kept", Value: func(c config) string { return intValue(c.DBMaxIdleConns) }},
	{Name: "DB_CONN_MAX_LIFETIME", Group: groupStore, Default: "0 (the store's own)",
		Meaning: "how long a connection is reused", Value: func(c config) string { return durationValue(c.DBConnMaxLifetime) }},
	{Name: "DB_STATEMENT_TIMEOUT", Group: groupStore, Default: "0 (the store's own)",
		Meaning: "bound on every statement", Value: func(c config) string { return durationValue(c.DBStatementTimeout) }},
	{Name: "DB_CONNECT_TIMEOUT", Group: groupStore, Default: "0 (the store's own)",
		Meaning: "bound on opening a connection", Value: func(c config) string { return durationValue(c.DBConnectTimeout) }},
	{Name: "RETENTION", Group: groupStore, Default: "off",
		Meaning: "drop events recorded longer ago than this (400d, 9600h)",
		Value:   func(c config) string { return durationOr(c.Retention, "off") }},

	// Authentication
	{Name: "AUTH_MODE", Group: groupAuth, Default: "token",
		Meaning: "token, or none: no authentication, loopback addresses only",
		Value:   func(c config) string { return c.AuthMode }},
	{Name: "BOOTSTRAP_ADMIN_TOKEN", Group: groupAuth, Default: "unset: the first start creates one and prints it",
		Meaning: "the admin token to create on first start", Secret: true,
		Value: func(c config) string { return c.BootstrapToken }},
	{Name: "JWT_SECRET", Group: groupAuth, Default: "unset",
		Meaning: "accept HS256 JWTs signed with this secret (at least 32 bytes)", Secret: true,
		Value: func(c config) string { return c.JWTSecret }},
	{Name: "METADATA_HASH_KEY", Group: groupLimits, Default: "unset",
		Meaning: "the secret of METADATA_RULES' hash rules (at least 16 bytes); changing it changes every hash from then on", Secret: true,
		Value: func(c config) string {
			if c.MetadataHashed {
				return "set"
			}
			return ""
		}},
	{Name: "METADATA_RULES", Group: groupLimits, Default: "none",
		Meaning: "privacy rules applied to metadata before it is stored: path:drop, path:mask-ip (/24, /48) or path:hash (HMAC-SHA256), comma-separated; a path is a key or dotted keys",
		Value: func(c config) string {
			if r := c.Privacy.String(); r != "" {
				return r
			}
			return "none"
		}},
	{Name: "JWT_JWKS_URL", Group: groupAuth, Default: "unset",
		Meaning: "accept RS256/ES256 JWTs whose keys this JWKS serves",
		Value:   func(c config) string { return redactURL(c.JWTJWKSURL) }},
	{Name: "JWT_ISSUER", Group: groupAuth, Default: "unset",
		Meaning: "the iss a JWT must carry, when set", Value: func(c config) string { return c.JWTIssuer }},
	{Name: "JWT_AUDIENCE", Group: groupAuth, Default: "unset",
		Meaning: "the aud a JWT must carry, when set", Value: func(c config) string { return c.JWTAudience }},
	{Name: "JWT_LEEWAY", Group: groupAuth, Default: "30s",
		Meaning: "clock skew allowed on exp, nbf, iat", Value: func(c config) string { return durationValue(c.JWTLeeway) }},

	// Limits
	{Name: "ACTIONS", Group: groupLimits, Default: "the seven predecessor actions",
		Meaning: "the action vocabulary: comma- or space-separated, or * for any",
		Value: func(c config) string {
			if c.Limits.Actions.Any() {
				return "*"
			}
			var s []string
			for _, a := range c.Limits.Actions.Actions() {
				s = append(s, string(a))
			}
			return strings.Join(s, ",")
		}},
	{Name: "MAX_CLOCK_SKEW", Group: groupLimits, Default: "5m",
		Meaning: "how far in the future occurred_at may be", Value: func(c config) string { return durationValue(c.Limits.MaxClockSkew) }},
	{Name: "MAX_METADATA_BYTES", Group: groupLimits, Default: "16384",
		Meaning: "size limit of metadata as sent", Value: func(c config) string { return intValue(c.Limits.MaxMetadataBytes) }},
	{Name: "MAX_BODY_BYTES", Group: groupLimits, Default: "1048576",
		Meaning: "request body limit (413 above)", Value: func(c config) string { return intValue(c.MaxBodyBytes) }},
	{Name: "BODY_MEMORY_BUDGET", Group: groupLimits, Default: "16777216, at least MAX_BODY_BYTES",
		Meaning: "request body bytes held at once by all requests together; beyond it 503 overloaded",
		Value:   func(c config) string { return intValue(c.BodyMemoryBudget) }},
	{Name: "MAX_IN_FLIGHT", Group: groupLimits, Default: "256",
		Meaning: "requests served at once; one more is answered 503 overloaded", Value: func(c config) string { return intValue(c.MaxInFlight) }},
	{Name: "TRUSTED_PROXIES", Group: groupLimits, Default: "none",
		Meaning: "addresses or CIDR ranges of reverse proxies whose X-Forwarded-For / Forwarded names the client",
		Value:   func(c config) string { return prefixesValue(c.TrustedProxies) }},
	{Name: "AUTH_FAILURE_LIMIT", Group: groupLimits, Default: "30",
		Meaning: "failed authentications a minute per client address, per replica (429 beyond; 0: off)",
		Value:   func(c config) string { return intValue(c.AuthFailureLimit) }},
	{Name: "AUTH_FAILURE_BURST", Group: groupLimits, Default: "AUTH_FAILURE_LIMIT",
		Meaning: "failures an address may make at once", Value: func(c config) string { return intValue(c.AuthFailureBurst) }},
	{Name: "RATE_LIMIT", Group: groupLimits, Default: "0 (off)",
		Meaning: "requests a second per credential (429 beyond); shared by the replicas through Redis with REDIS_URL",
		Value:   func(c config) string { return intValue(c.RateLimit) }},
	{Name: "RATE_LIMIT_BURST", Group: groupLimits, Default: "RATE_LIMIT",
		Meaning: "requests a credential may make at once", Value: func(c config) string { return intValue(c.RateLimitBurst) }},

	// Browser clients and migration
	{Name: "CORS_ALLOWED_ORIGINS", Aliases: []string{"HTTP_CORS_ALLOWED_ORIGINS"}, Group: groupClients, Default: "none: CORS off",
		Meaning: "origins whose pages may call the API from a browser (https://app.example.com), or * for any",
		Value:   func(c config) string { return strings.Join(c.CORS.AllowedOrigins, ", ") }},
	{Name: "CORS_ALLOWED_METHODS", Aliases: []string{"HTTP_CORS_ALLOWED_METHODS"}, Group: groupClients, Default: "GET, HEAD, POST, PATCH",
		Meaning: "methods such a page may use", Value: func(c config) string { return strings.Join(c.CORS.AllowedMethods, ", ") }},
	{Name: "CORS_ALLOWED_HEADERS", Aliases: []string{"HTTP_CORS_ALLOWED_HEADERS"}, Group: groupClients,
		Default: "Authorization, Content-Type, Idempotency-Key, Traceparent, Tracestate",
		Meaning: "request headers such a page may send (* for any)", Value: func(c config) string { return strings.Join(c.CORS.AllowedHeaders, ", ") }},
	{Name: "CORS_ALLOW_CREDENTIALS", Group: groupClients, Default: "false",
		Meaning: "true: pages may send cookies and client certificates (refused with the origin *)",
		Value:   func(c config) string { return strconv.FormatBool(c.CORS.AllowCredentials) }},
	{Name: "CORS_MAX_AGE", Aliases: []string{"HTTP_CORS_MAX_AGE_HOURS_CACHE"}, Group: groupClients, Default: "unset: browsers keep a preflight 5s",
		Meaning: "how long a browser reuses a preflight's answer (10m, 2h; the HTTP_CORS_ name in whole hours)",
		Value:   func(c config) string { return durationOr(c.CORS.MaxAge, "") }},
	{Name: "EVENT_TRACKING_ANONYMOUS_SCOPES", Group: groupClients, Default: "unset: off",
		Meaning: "migration setting: POST /api/event and GET /api/events serve requests with no Authorization header, " +
			"from EVENT_TRACKING_ANONYMOUS_NETWORKS, with these scopes (events:read, events:write)",
		Value: func(c config) string { s, _ := describeAnonymous(c.AnonymousTracking); return s }},
	{Name: "EVENT_TRACKING_ANONYMOUS_NETWORKS", Group: groupClients, Default: "unset",
		Meaning: "CIDR ranges or addresses such requests must come from (required with the scopes)",
		Value:   func(c config) string { _, n := describeAnonymous(c.AnonymousTracking); return n }},

	// Scheduled counting
	{Name: "COUNT_SCHEDULE", Aliases: []string{"CRON_TAB_COUNT_USERS_EVENT_TASK"}, Group: groupCounting, Default: DefaultCountSchedule,
		Meaning: "the counting windows: five cron fields or @hourly, @daily, ..., in UTC",
		Value:   func(c config) string { return c.CountSchedule }},
	{Name: "COUNT_MAX_CATCHUP", Group: groupCounting, Default: "42",
		Meaning: "most missed windows one run computes after an outage (1..100000)",
		Value:   func(c config) string { return intValue(c.CountMaxCatchup) }},
	{Name: "COUNT_SETTLE", Group: groupCounting, Default: "the database timeouts + 1s, at least 15s",
		Meaning: "how long after a window closes it is counted",
		Value:   func(c config) string { return durationValue(countSettle(c)) }},
	{Name: "WORKER_CONCURRENCY", Group: groupCounting, Default: "4",
		Meaning: "windows one activityd worker computes at once", Value: func(c config) string { return intValue(c.WorkerConcurrency) }},

	// Cache and Redis
	{Name: "REDIS_URL", Group: groupCache, Default: "unset",
		Meaning: "cache in Redis (shared by replicas) instead of in process, and run the counting job over asynq (worker, scheduler) instead of in serve",
		Value:   func(c config) string { return redactURL(c.RedisURL) }},
	{Name: "CACHE_TTL", Group: groupCache, Default: "60s",
		Meaning: "lifetime of cached list reads; 0 turns caching off (at most 12h)",
		Value:   func(c config) string { return durationValue(c.CacheTTL) }},
	{Name: "CACHE_TIMEOUT", Group: groupCache, Default: "50ms",
		Meaning: "bound on every Redis call; past it the read goes to storage", Value: func(c config) string { return durationValue(c.CacheTimeout) }},
	{Name: "CACHE_MAX_ENTRIES", Group: groupCache, Default: "100000",
		Meaning: "entry bound of the in-process cache (it also keeps to a third of Go's share of MEMORY_LIMIT)",
		Value:   func(c config) string { return intValue(c.CacheMaxEntries) }},
	{Name: "CACHE_PREFIX", Group: groupCache, Default: "activityd:",
		Meaning: "prefix of every Redis key", Value: func(c config) string { return c.CachePrefix }},

	// Logs, metrics and profiling
	{Name: "LOG_FORMAT", Group: groupOps, Default: "text on a terminal, else json",
		Meaning: "log format: text or json", Value: func(c config) string { return c.LogFormat }},
	{Name: "LOG_LEVEL", Group: groupOps, Default: "info",
		Meaning: "debug, info, warn or error", Value: func(c config) string { return c.LogLevel }},
	{Name: "METRICS_ADDR", Group: groupOps, Default: "unset: /metrics on the API port",
		Meaning: "a listener of its own for /metrics; worker and scheduler serve metrics only there",
		Value:   func(c config) string { return c.MetricsAddr }},
	{Name: "PPROF_ADDR", Group: groupOps, Default: "unset",
		Meaning: "a listener of its own for Go's profiler (/debug/pprof/), loopback only",
		Value:   func(c config) string { return c.PprofAddr }},
	{Name: "EVIDENCE_CHAINS", Group: groupEvidence, Default: "true",
		Meaning: "link every change into its user's hash chain as it is recorded; false saves that cost, and verification then reports the changes as unchained",
		Value: func(c config) string {
			if c.Unchained {
				return "false"
			}
			return "true"
		}},
	{Name: "CHECKPOINT_KEY", Group: groupEvidence, Default: "unset",
		Meaning: "the Ed25519 key that signs checkpoints: PEM (PKCS#8) or a base64 32-byte seed; unset: CHECKPOINT_KEY_FILE's", Secret: true},
	{Name: "CHECKPOINT_KEY_FILE", Group: groupEvidence, Default: DefaultCheckpointKeyFile,
		Meaning: "the checkpoint key's file when CHECKPOINT_KEY is unset: made (mode 0600) on first start, its public key logged; replicas must share one key",
		Value:   func(c config) string { return c.CheckpointKeyFile }},
	{Name: "CHECKPOINT_SINKS", Group: groupEvidence, Default: DefaultCheckpointSinks,
		Meaning: "where checkpoints are written besides the database, comma-separated: dir:PATH (files never overwritten), stdout, webhook:SUBSCRIPTION_ID; or none",
		Value:   func(c config) string { return listValue(c.CheckpointSinks) }},
	{Name: "CHECKPOINT_SCHEDULE", Group: groupEvidence, Default: DefaultCheckpointSchedule,
		Meaning: "when serve signs a checkpoint: five cron fields or @hourly, @daily, ..., in UTC; off: only on demand (POST /v1/checkpoints, activityd checkpoint)",
		Value:   func(c config) string { return c.CheckpointSchedule }},
	{Name: "FEED_MAX_FOLLOWERS", Group: groupFeed, Default: "1024",
		Meaning: "GET /v1/changes requests open at once (long polls, event streams), apart from MAX_IN_FLIGHT",
		Value:   func(c config) string { return intValue(c.MaxFollowers) }},
	{Name: "FEED_POLL", Group: groupFeed, Default: "500ms",
		Meaning: "how often a waiting feed reader looks for changes other processes made (this one's wake it at once)",
		Value:   func(c config) string { return durationValue(c.FeedPoll) }},
	{Name: "WEBHOOK_ALLOW", Group: groupFeed, Default: "none",
		Meaning: "CIDR ranges or host names that webhooks may target although private, loopback or link-local (refused otherwise)",
		Value:   func(c config) string { return listValue(c.WebhookAllow) }},
	{Name: "WEBHOOK_ALLOW_HTTP", Group: groupFeed, Default: "false",
		Meaning: "true: webhook URLs may be http:// (https only otherwise)", Value: func(c config) string { return strconv.FormatBool(c.WebhookAllowHTTP) }},
	{Name: "WEBHOOK_BATCH", Group: groupFeed, Default: "100",
		Meaning: "changes one webhook delivery carries at most", Value: func(c config) string { return intValue(c.WebhookBatch) }},
	{Name: "WEBHOOK_MAX_FAILURES", Group: groupFeed, Default: "10",
		Meaning: "failed attempts in a row (retried with exponential backoff, 1 s to 1 h) that pause a subscription",
		Value:   func(c config) string { return intValue(c.WebhookMaxFailures) }},
	{Name: "WEBHOOK_TIMEOUT", Group: groupFeed, Default: "10s",
		Meaning: "how long a receiver has to answer a delivery", Value: func(c config) string { return durationValue(c.WebhookTimeout) }},
	{Name: "PPROF_ALLOW_REMOTE", Group: groupOps, Default: "false",
		Meaning: "true: accept a PPROF_ADDR that is not loopback", Value: func(c config) string { return strconv.FormatBool(c.PprofAllowRemote) }},

	// Memory
	{Name: "MEMORY_LIMIT", Group: groupMemory, Default: "150MiB",
		Meaning: "the resident memory to budget for (a container's limit); Go's soft limit and the cache's bytes derive from it",
		Value:   func(c config) string { return bytesValue(c.Memory.Limit) }},
	{Name: "GOGC", Group: groupMemory, Default: "400",
		Meaning: "Go's garbage collector target; set, the runtime's own reading of it",
		Value: func(c config) string {
			if c.Memory.GCPercent < 0 {
				return "(the runtime's)"
			}
			return intValue(c.Memory.GCPercent)
		}},
	{Name: "GOMEMLIMIT", Group: groupMemory, Default: "MEMORY_LIMIT less what lives outside Go's heap",
		Meaning: "Go's soft memory limit; set, the runtime's own reading of it",
		Value: func(c config) string {
			if c.Memory.GoLimit < 0 {
				return "(the runtime's)"
			}
			return bytesValue(c.Memory.GoLimit)
		}},

	// OpenTelemetry
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Group: groupTelemetry, Default: "unset: no spans exported",
		Meaning: "export spans over OTLP to this collector"},
	{Name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Group: groupTelemetry, Default: "unset",
		Meaning: "the same, for spans only"},
	{Name: "OTEL_EXPORTER_OTLP_PROTOCOL", Group: groupTelemetry, Default: "http/protobuf",
		Meaning: "http/protobuf or grpc"},
	{Name: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Group: groupTelemetry, Default: "OTEL_EXPORTER_OTLP_PROTOCOL",
		Meaning: "the same, for spans only"},
	{Name: "OTEL_EXPORTER_OTLP_HEADERS", Group: groupTelemetry, Default: "unset", Secret: true,
		Meaning: "headers sent to the collector (key=value,...; often a credential)"},
	{Name: "OTEL_SERVICE_NAME", Group: groupTelemetry, Default: "activityd, activityd-worker, ...",
		Meaning: "the service.name of spans and metrics"},
	{Name: "OTEL_RESOURCE_ATTRIBUTES", Group: groupTelemetry, Default: "unset",
		Meaning: "more resource attributes (key=value,...)"},
	{Name: "OTEL_TRACES_SAMPLER", Group: groupTelemetry, Default: "parentbased_always_on",
		Meaning: "which requests are traced (with OTEL_TRACES_SAMPLER_ARG)"},
	{Name: "OTEL_TRACES_SAMPLER_ARG", Group: groupTelemetry, Default: "unset",
		Meaning: "the sampler's argument (a ratio such as 0.1)"},
	{Name: "OTEL_SDK_DISABLED", Group: groupTelemetry, Default: "false",
		Meaning: "true: no spans and no OpenTelemetry metrics (Go's and the process's remain)"},
}

// printSettingsHelp prints every setting, grouped, with its default and
// meaning: activityd help config.
func printSettingsHelp(w io.Writer) {
	fmt.Fprint(w, `activityd reads its configuration from these environment variables
(a name in parentheses is accepted too; the first one wins).
'activityd config' prints the values in effect and where each came from.
`)
	for _, g := range settingGroups {
		fmt.Fprintf(w, "\n%s\n", g)
		for _, s := range settings {
			if s.Group != g {
				continue
			}
			name := s.Name
			if len(s.Aliases) > 0 {
				name += " (" + strings.Join(s.Aliases, ", ") + ")"
			}
			fmt.Fprintf(w, "  %s\n", name)
			fmt.Fprintf(w, "      default: %s\n", s.Default)
			for _, l := range wrap(s.Meaning, 70) {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

// wrap breaks text into lines of at most width runes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) > width:
			lines = append(lines, line)
			line = word
		default:
			line += " " + word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// hidden is what activityd config prints for a secret that is set.
const hidden = "(set, hidden)"

// printEffectiveConfig prints every setting's value in effect and where it
// came from (env, naming the variable when an alias set it, or default):
// activityd config. Secrets are never printed, and URLs lose their
// passwords. The columns are setting, source and value, the value last as
// it may be long.
func printEffectiveConfig(w io.Writer, cfg config, getenv func(string) string) {
	type row struct{ group, name, source, value string }
	var rows []row
	nameWidth, sourceWidth := 0, 0
	for _, s := range settings {
		source, raw := "default", ""
		for _, n := range s.names() {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				source, raw = "env", v
				if n != s.Name {
					source = "env " + n
				}
				break
			}
		}
		var value string
		switch {
		case s.Secret && raw != "":
			value = hidden
		case s.Value != nil:
			value = s.Value(cfg)
		case raw != "":
			value = raw
		}
		if value == "" {
			value = s.Default // unset, and nothing derived from it
		}
		rows = append(rows, row{s.Group, s.Name, source, redactURL(value)})
		nameWidth, sourceWidth = max(nameWidth, len(s.Name)), max(sourceWidth, len(source))
	}
	for i, g := range settingGroups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "# %s\n", g)
		for _, r := range rows {
			if r.group == g {
				fmt.Fprintf(w, "%-*s  %-*s  %s\n", nameWidth, r.name, sourceWidth, r.source, r.value)
			}
		}
	}
}
