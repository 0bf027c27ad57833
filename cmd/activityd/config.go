package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/activityd/activityd/adapters/auth"
	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// config is everything activityd reads from its environment (12-factor).
// Each variable, its default and its meaning are listed in settings.go
// (activityd help config; a test holds loadConfig to that list) and in
// README.md.
type config struct {
	HTTPAddr string
	// MetricsAddr is METRICS_ADDR: a listener of its own for /metrics
	// (serve then no longer serves it on HTTP_ADDR; worker and scheduler
	// serve metrics only there). "": none.
	MetricsAddr    string
	DatabaseURL    string
	LogFormat      string // text, json or "" (auto: text on a terminal)
	LogLevel       string
	AuthMode       string // token or none
	BootstrapToken string
	Limits         domain.Limits
	MaxBodyBytes   int64
	MaxInFlight    int           // MAX_IN_FLIGHT
	FeedPoll       time.Duration // FEED_POLL
	MaxFollowers   int           // FEED_MAX_FOLLOWERS

	// Privacy: METADATA_RULES with METADATA_HASH_KEY (its hash rules'
	// secret), applied to metadata before anything is stored.
	Privacy        domain.Privacy
	MetadataRules  string
	MetadataHashed bool // METADATA_HASH_KEY is set

	// Webhooks: WEBHOOK_ALLOW (private targets allowed), WEBHOOK_ALLOW_HTTP,
	// WEBHOOK_TIMEOUT, WEBHOOK_BATCH, WEBHOOK_MAX_FAILURES.
	WebhookAllow       []string
	WebhookAllowHTTP   bool
	WebhookTimeout     time.Duration
	WebhookBatch       int
	WebhookMaxFailures int
	ShutdownTimeout    time.Duration
	Retention          time.Duration // 0: keep everything

	// BodyMemoryBudget is BODY_MEMORY_BUDGET: the request body bytes held
	// at once, server-wide, by the requests being served.
	BodyMemoryBudget int64

	// PprofAddr is PPROF_ADDR: a listener of its own for net/http/pprof,
	// in serve, worker and scheduler. "": none. Loopback only unless
	// PprofAllowRemote (PPROF_ALLOW_REMOTE=true).
	PprofAddr        string
	PprofAllowRemote bool
	// TLSCertFile and TLSKeyFile (TLS_CERT_FILE, TLS_KEY_FILE): serve the
	// API over TLS with this PEM pair, reloaded when the files change.
	TLSCertFile, TLSKeyFile string

	// Evidence (issue 18): EVIDENCE_CHAINS, CHECKPOINT_KEY (secret),
	// CHECKPOINT_KEY_FILE, CHECKPOINT_SINKS, CHECKPOINT_SCHEDULE (nil
	// parsed: off, on demand only).
	Unchained                bool
	CheckpointKey            string
	CheckpointKeyFile        string
	CheckpointSinks          []string
	CheckpointSchedule       string
	CheckpointScheduleParsed domain.Schedule

	// CountSchedule is the counting schedule's cron spec (COUNT_SCHEDULE),
	// evaluated in UTC; CountScheduleParsed is it parsed.
	CountSchedule       string
	CountScheduleParsed domain.Schedule
	CountMaxCatchup     int // COUNT_MAX_CATCHUP
	// CountSettle is COUNT_SETTLE: how long after a window closes it is
	// counted; 0 (unset): derived from the database timeouts (countSettle).
	CountSettle time.Duration
	// WorkerConcurrency is WORKER_CONCURRENCY: windows one `activityd
	// worker` computes at once.
	WorkerConcurrency int

	RedisURL        string
	CacheTTL        time.Duration // 0: no caching
	CacheTimeout    time.Duration // per Redis call
	CacheMaxEntries int           // in-process cache bound
	CachePrefix     string        // Redis key prefix

	JWTSecret   string
	JWTJWKSURL  string
	JWTIssuer   string
	JWTAudience string
	JWTLeeway   time.Duration

	// Abuse limits (limits.go): TRUSTED_PROXIES, AUTH_FAILURE_LIMIT and
	// AUTH_FAILURE_BURST (failures a minute per client address; 0: none),
	// RATE_LIMIT and RATE_LIMIT_BURST (requests a second per principal;
	// 0: none).
	TrustedProxies   []netip.Prefix
	AuthFailureLimit int
	AuthFailureBurst int
	RateLimit        int
	RateLimitBurst   int

	// CORS is CORS_ALLOWED_ORIGINS and the rest of the cross-origin
	// policy, also read from the event-tracking service's HTTP_CORS_*
	// names (clients.go). AnonymousTracking is
	// EVENT_TRACKING_ANONYMOUS_SCOPES and _NETWORKS: the event-tracking
	// routes' requests without a credential (clients.go).
	CORS              httpapi.CORS
	AnonymousTracking httpapi.Anonymous

	DBMaxOpenConns     int
	DBMaxIdleConns     int
	DBConnMaxLifetime  time.Duration
	DBStatementTimeout time.Duration
	DBConnectTimeout   time.Duration

	// Memory is MEMORY_LIMIT and what derives from it: Go's soft memory
	// limit, GOGC, the in-process cache's bytes (gc.go).
	Memory memoryBudget
}

// env reads variables, remembering the first bad one so that a config is
// read in one straight pass and reported in one message.
type env struct {
	get func(string) string
	err error
}

// first returns the value of the first of names that is set, and its name.
func (e *env) first(names ...string) (string, string) {
	for _, n := range names {
		if v := strings.TrimSpace(e.get(n)); v != "" {
			return v, n
		}
	}
	return "", names[0]
}

func (e *env) fail(name, value, why string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s=%q: %s", name, value, why)
	}
}

func (e *env) str(def string, names ...string) string {
	v, _ := e.first(names...)
	if v == "" {
		return def
	}
	return v
}

func (e *env) duration(def time.Duration, name string) time.Duration {
	v, _ := e.first(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(name, v, "must be a non-negative duration such as 500ms, 30s or 5m")
		return def
	}
	return d
}

// days is duration that also accepts a whole number of days ("90d"), the
// unit retention is usually thought in.
func (e *env) days(def time.Duration, name string) time.Duration {
	v, _ := e.first(name)
	if n, ok := strings.CutSuffix(v, "d"); ok && v != "" {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 || d > 100000 {
			e.fail(name, v, "must be a whole number of days such as 90d, or a duration such as 2160h")
			return def
		}
		return time.Duration(d) * 24 * time.Hour
	}
	return e.duration(def, name)
}

func (e *env) integer(def int64, min, max int64, name string) int64 {
	v, _ := e.first(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		e.fail(name, v, fmt.Sprintf("must be an integer from %d to %d", min, max))
		return def
	}
	return n
}

func (e *env) oneOf(def string, allowed []string, name string) string {
	v, _ := e.first(name)
	if v == "" {
		return def
	}
	v = strings.ToLower(v)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, v, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// addr reads a listen address: host:port, or a bare port number.
func (e *env) addr(def string, names ...string) string {
	addr, name := e.first(names...)
	switch {
	case addr == "":
		return def
	case !strings.Contains(addr, ":"):
		if p, err := strconv.Atoi(addr); err != nil || p < 0 || p > 65535 {
			e.fail(name, addr, "must be a port number or host:port, e.g. 8080, :8080 or 127.0.0.1:8080")
		}
		return ":" + addr
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			e.fail(name, addr, "must be host:port, e.g. :8080 or 127.0.0.1:8080")
		}
		return addr
	}
}

// loadConfig reads the configuration through getenv (os.Getenv in main).
// A bad value is an error naming the variable.
func loadConfig(getenv func(string) string) (config, error) {
	e := &env{get: getenv}
	c := config{
		DatabaseURL:     e.str("sqlite:./data/activity.db", "DATABASE_URL", "DB_URL"),
		LogFormat:       e.oneOf("", []string{"text", "json"}, "LOG_FORMAT"),
		LogLevel:        e.oneOf("info", []string{"debug", "info", "warn", "error"}, "LOG_LEVEL"),
		AuthMode:        e.oneOf("token", []string{"token", "none"}, "AUTH_MODE"),
		BootstrapToken:  e.str("", "BOOTSTRAP_ADMIN_TOKEN"),
		MaxBodyBytes:    e.integer(1<<20, 1024, 1<<30, "MAX_BODY_BYTES"),
		MaxInFlight:     int(e.integer(256, 1, 1_000_000, "MAX_IN_FLIGHT")),
		FeedPoll:        e.duration(app.DefaultFeedPoll, "FEED_POLL"),
		MaxFollowers:    int(e.integer(httpapi.DefaultMaxFollowers, 1, 1_000_000, "FEED_MAX_FOLLOWERS")),
		ShutdownTimeout: e.duration(15*time.Second, "SHUTDOWN_TIMEOUT"),
		Retention:       e.days(0, "RETENTION"),

		RedisURL:        e.str("", "REDIS_URL"),
		CacheTTL:        e.duration(60*time.Second, "CACHE_TTL"),
		CacheTimeout:    e.duration(50*time.Millisecond, "CACHE_TIMEOUT"),
		CacheMaxEntries: int(e.integer(100_000, 1, 10_000_000, "CACHE_MAX_ENTRIES")),
		CachePrefix:     e.str("activityd:", "CACHE_PREFIX"),

		JWTSecret:   e.str("", "JWT_SECRET"),
		JWTJWKSURL:  e.str("", "JWT_JWKS_URL"),
		JWTIssuer:   e.str("", "JWT_ISSUER"),
		JWTAudience: e.str("", "JWT_AUDIENCE"),
		JWTLeeway:   e.duration(30*time.Second, "JWT_LEEWAY"),

		DBMaxOpenConns:     int(e.integer(0, 0, 10000, "DB_MAX_OPEN_CONNS")),
		DBMaxIdleConns:     int(e.integer(0, 0, 10000, "DB_MAX_IDLE_CONNS")),
		DBConnMaxLifetime:  e.duration(0, "DB_CONN_MAX_LIFETIME"),
		DBStatementTimeout: e.duration(0, "DB_STATEMENT_TIMEOUT"),
		DBConnectTimeout:   e.duration(0, "DB_CONNECT_TIMEOUT"),
	}

	c.HTTPAddr = e.addr(":8080", "HTTP_ADDR", "HTTP_PORT")
	c.MetricsAddr = e.addr("", "METRICS_ADDR")
	if c.MetricsAddr != "" && c.MetricsAddr == c.HTTPAddr && !strings.HasSuffix(c.MetricsAddr, ":0") {
		e.fail("METRICS_ADDR", c.MetricsAddr, "must differ from HTTP_ADDR (unset it to serve /metrics on the API port)")
	}
	c.PprofAddr = e.addr("", "PPROF_ADDR")
	c.PprofAllowRemote = e.oneOf("false", []string{"true", "false"}, "PPROF_ALLOW_REMOTE") == "true"
	c.WebhookAllow = strings.FieldsFunc(e.str("", "WEBHOOK_ALLOW"), func(r rune) bool { return r == ',' || r == ' ' })
	if _, err := webhook.NewGuard(c.WebhookAllow); err != nil {
		e.fail("WEBHOOK_ALLOW", strings.Join(c.WebhookAllow, ","), err.Error())
	}
	c.MetadataRules = e.str("", "METADATA_RULES")
	hashKey := e.str("", "METADATA_HASH_KEY")
	c.MetadataHashed = hashKey != ""
	if p, err := domain.ParsePrivacy(c.MetadataRules, []byte(hashKey)); err != nil {
		e.fail("METADATA_RULES", c.MetadataRules, err.Error()+" (a hash rule needs METADATA_HASH_KEY)")
	} else {
		c.Privacy = p
	}
	c.WebhookAllowHTTP = e.oneOf("false", []string{"true", "false"}, "WEBHOOK_ALLOW_HTTP") == "true"
	c.WebhookTimeout = e.duration(10*time.Second, "WEBHOOK_TIMEOUT")
	c.WebhookBatch = int(e.integer(app.DefaultWebhookBatch, 1, 1000, "WEBHOOK_BATCH"))
	c.WebhookMaxFailures = int(e.integer(app.DefaultWebhookMaxFailures, 1, 1000, "WEBHOOK_MAX_FAILURES"))
	switch a := c.PprofAddr; {
	case a == "" || strings.HasSuffix(a, ":0"):
	case a == c.HTTPAddr:
		e.fail("PPROF_ADDR", a, "must differ from HTTP_ADDR: the profiler is never served on the API port")
	case a == c.MetricsAddr:
		e.fail("PPROF_ADDR", a, "must differ from METRICS_ADDR")
	}
	if c.PprofAddr != "" && !c.PprofAllowRemote && !isLoopback(c.PprofAddr) {
		e.fail("PPROF_ADDR", c.PprofAddr, "must be a loopback address such as 127.0.0.1:6060, [::1]:6060 or localhost:6060 "+
			"(the profiler has no authentication, and an empty host as in :6060, or 0.0.0.0, listens on every interface); "+
			"set PPROF_ALLOW_REMOTE=true to listen on another address")
	}

	c.TLSCertFile, c.TLSKeyFile = e.str("", "TLS_CERT_FILE"), e.str("", "TLS_KEY_FILE")
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		e.fail("TLS_CERT_FILE", c.TLSCertFile, "and TLS_KEY_FILE go together: set both (a PEM certificate chain and its key) or neither")
	case c.TLSCertFile != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			e.fail("TLS_CERT_FILE", c.TLSCertFile, "with TLS_KEY_FILE="+c.TLSKeyFile+": "+err.Error())
		}
	}

	c.Limits = domain.DefaultLimits()
	if v, _ := e.first("ACTIONS"); v != "" {
		if v == "*" {
			c.Limits.Actions = domain.AnyAction()
		} else {
			voc, err := domain.NewVocabulary(strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
			if err != nil {
				e.fail("ACTIONS", v, err.Error())
			}
			c.Limits.Actions = voc
		}
	}
	c.Limits.MaxClockSkew = e.duration(c.Limits.MaxClockSkew, "MAX_CLOCK_SKEW")
	c.Limits.MaxMetadataBytes = int(e.integer(int64(c.Limits.MaxMetadataBytes), 2, 1<<20, "MAX_METADATA_BYTES"))
	if int64(c.Limits.MaxMetadataBytes) > c.MaxBodyBytes {
		e.fail("MAX_METADATA_BYTES", strconv.Itoa(c.Limits.MaxMetadataBytes), "must not exceed MAX_BODY_BYTES")
	}
	// Unset: 16 MiB, or MAX_BODY_BYTES when larger, so that the largest
	// body allowed always fits.
	c.BodyMemoryBudget = e.integer(max(httpapi.DefaultBodyMemoryBudget, c.MaxBodyBytes), 1024, 1<<40, "BODY_MEMORY_BUDGET")
	if c.BodyMemoryBudget < c.MaxBodyBytes {
		e.fail("BODY_MEMORY_BUDGET", strconv.FormatInt(c.BodyMemoryBudget, 10),
			"must be at least MAX_BODY_BYTES ("+strconv.FormatInt(c.MaxBodyBytes, 10)+"): a body that large would never fit")
	}
	if c.CacheTTL > 12*time.Hour {
		e.fail("CACHE_TTL", c.CacheTTL.String(), "must be at most 12h")
	}
	spec, specVar := e.first("COUNT_SCHEDULE", "CRON_TAB_COUNT_USERS_EVENT_TASK")
	if spec == "" {
		spec = DefaultCountSchedule
	}
	c.CountSchedule = spec
	if sched, err := parseSchedule(spec); err != nil {
		e.fail(specVar, spec, err.Error())
	} else {
		c.CountScheduleParsed = sched
	}
	c.Unchained = e.oneOf("true", []string{"true", "false"}, "EVIDENCE_CHAINS") == "false"
	c.CheckpointKey = e.str("", "CHECKPOINT_KEY")
	c.CheckpointKeyFile = e.str(DefaultCheckpointKeyFile, "CHECKPOINT_KEY_FILE")
	sinks := e.str(DefaultCheckpointSinks, "CHECKPOINT_SINKS")
	if parsed, err := parseCheckpointSinks(sinks); err != nil {
		e.fail("CHECKPOINT_SINKS", sinks, err.Error())
	} else {
		c.CheckpointSinks = parsed
	}
	c.CheckpointSchedule = e.str(DefaultCheckpointSchedule, "CHECKPOINT_SCHEDULE")
	if c.CheckpointSchedule != "off" {
		if sched, err := parseSchedule(c.CheckpointSchedule); err != nil {
			e.fail("CHECKPOINT_SCHEDULE", c.CheckpointSchedule, err.Error()+"; or off")
		} else {
			c.CheckpointScheduleParsed = sched
		}
	}
	c.CountMaxCatchup = int(e.integer(app.DefaultMaxCatchup, 1, 100_000, "COUNT_MAX_CATCHUP"))
	c.CountSettle = e.duration(0, "COUNT_SETTLE")
	if c.CountSettle > time.Hour {
		e.fail("COUNT_SETTLE", c.CountSettle.String(), "must be at most 1h")
	}
	c.WorkerConcurrency = int(e.integer(4, 1, 1000, "WORKER_CONCURRENCY"))
	loadAbuseLimits(e, &c)
	loadCORS(e, &c)
	loadAnonymousTracking(e, &c)
	if c.RedisURL != "" {
		if _, err := rediscache.ParseURL(c.RedisURL); err != nil {
			e.fail("REDIS_URL", redactURL(c.RedisURL), err.Error())
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < auth.MinSecretLen {
		e.fail("JWT_SECRET", "(hidden)", fmt.Sprintf("must be at least %d bytes for HS256 (RFC 7518)", auth.MinSecretLen))
	}
	if c.JWTJWKSURL != "" {
		if u, err := url.Parse(c.JWTJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			e.fail("JWT_JWKS_URL", c.JWTJWKSURL, "must be an http(s) URL")
		}
	}
	c.Memory = e.memory(c.DatabaseURL, c.DBMaxOpenConns)
	return c, e.err
}

// The evidence settings' defaults: the key and the checkpoint files next
// to the default SQLite file; a checkpoint every hour, on the hour.
const (
	DefaultCheckpointKeyFile  = "./data/checkpoint.key"
	DefaultCheckpointSinks    = "dir:./data/checkpoints"
	DefaultCheckpointSchedule = "@hourly"
)

// DefaultCountSchedule is COUNT_SCHEDULE's default: every four hours, on
// the hour (00:00, 04:00, ... UTC), as the predecessor's
// CRON_TAB_COUNT_USERS_EVENT_TASK.
const DefaultCountSchedule = "0 */4 * * *"

// parseSchedule parses a counting schedule the way asynq's scheduler does
// (robfig/cron's standard parser: five fields, or a descriptor such as
// @hourly), so the scheduler and the counting policy agree on the ticks.
// Schedules are evaluated in UTC: a CRON_TZ= or TZ= prefix is refused,
// and so is @every, whose ticks depend on when it is asked rather than on
// the clock, so windows would not line up from one run to the next.
func parseSchedule(spec string) (domain.Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("schedules are evaluated in UTC; remove the time zone prefix")
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, errors.New("@every is not aligned to the clock; use a cron expression such as \"0 * * * *\" or @hourly")
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("must be a cron expression of five fields (minute hour day-of-month month day-of-week) such as \"0 */4 * * *\", or a descriptor such as @hourly or @daily: %w", err)
	}
	return utcSchedule{s}, nil
}

// utcSchedule evaluates a cron schedule in UTC, whatever the time zone of
// the time it is given.
type utcSchedule struct{ s cron.Schedule }

func (u utcSchedule) Next(t time.Time) time.Time { return u.s.Next(t.UTC()) }

// checkLoopback refuses AUTH_MODE=none on anything but a loopback address:
// an unauthenticated API must never be reachable from another machine.
func checkLoopback(addr string) error {
	if isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("AUTH_MODE=none refuses to listen on %q: set HTTP_ADDR to a loopback address such as 127.0.0.1:8080", addr)
}

// isLoopback reports whether the listen address addr (host:port) is
// reachable from this machine only: its host is localhost or an IP in
// 127.0.0.0/8 or ::1. An empty host (":8080") or an unspecified one
// (0.0.0.0, ::) listens on every interface, so it is not loopback, and
// neither is any other name, whatever it resolves to now.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
