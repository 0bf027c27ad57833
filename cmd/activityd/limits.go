package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	rediscache "github.com/activityd/activityd/adapters/cache/redis"
	memlimit "github.com/activityd/activityd/adapters/limit/memory"
	redislimit "github.com/activityd/activityd/adapters/limit/redis"
	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/ports"
)

// Defaults of the abuse limits (README, "Operating activityd").
const (
	// DefaultAuthFailureLimit is AUTH_FAILURE_LIMIT's default: 30 failed
	// authentications a minute per client address (bursts of as many)
	// leave room for a person mistyping and a client retrying with a
	// stale token, and stop guessing and floods of bad tokens.
	DefaultAuthFailureLimit = 30
	// maxLimit bounds every limit and burst read.
	maxLimit = 1_000_000
)

// loadAbuseLimits reads TRUSTED_PROXIES, AUTH_FAILURE_LIMIT,
// AUTH_FAILURE_BURST, RATE_LIMIT and RATE_LIMIT_BURST into c.
func loadAbuseLimits(e *env, c *config) {
	if v, _ := e.first("TRUSTED_PROXIES"); v != "" {
		ps, err := parseTrustedProxies(v)
		if err != nil {
			e.fail("TRUSTED_PROXIES", v, err.Error())
		}
		c.TrustedProxies = ps
	}
	c.AuthFailureLimit = int(e.integer(DefaultAuthFailureLimit, 0, maxLimit, "AUTH_FAILURE_LIMIT"))
	c.AuthFailureBurst = int(e.integer(int64(max(c.AuthFailureLimit, 1)), 1, maxLimit, "AUTH_FAILURE_BURST"))
	if v, _ := e.first("AUTH_FAILURE_BURST"); v != "" && c.AuthFailureLimit == 0 {
		e.fail("AUTH_FAILURE_BURST", v, "has no effect with AUTH_FAILURE_LIMIT=0 (no limit); unset it, or set AUTH_FAILURE_LIMIT")
	}
	// No rate limit by default: one token may legitimately carry a whole
	// ingestion pipeline (the load benchmarks of docs/performance.md send
	// thousands of requests a second from one token), so no default fits
	// every deployment, and MAX_IN_FLIGHT already bounds what one client
	// takes at once.
	c.RateLimit = int(e.integer(0, 0, maxLimit, "RATE_LIMIT"))
	c.RateLimitBurst = int(e.integer(int64(max(c.RateLimit, 1)), 1, maxLimit, "RATE_LIMIT_BURST"))
	if v, _ := e.first("RATE_LIMIT_BURST"); v != "" && c.RateLimit == 0 {
		e.fail("RATE_LIMIT_BURST", v, "has no effect without RATE_LIMIT (requests a second per credential); set RATE_LIMIT too")
	}
}

// parseTrustedProxies reads a list of CIDR ranges and addresses separated
// by commas or spaces ("10.0.0.0/8, 192.0.2.7, 2001:db8::/32").
func parseTrustedProxies(v string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32", f)
			}
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or a CIDR range such as 10.0.0.0/8", f)
		}
		a = a.WithZone("").Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

// authFailureLimit is AUTH_FAILURE_LIMIT as a limit; the zero Limit (none)
// for 0.
func (c config) authFailureLimit() ports.Limit {
	if c.AuthFailureLimit == 0 {
		return ports.Limit{}
	}
	return ports.Limit{Rate: c.AuthFailureLimit, Period: time.Minute, Burst: c.AuthFailureBurst}
}

// rateLimit is RATE_LIMIT as a limit; the zero Limit (none) for 0.
func (c config) rateLimit() ports.Limit {
	if c.RateLimit == 0 {
		return ports.Limit{}
	}
	return ports.Limit{Rate: c.RateLimit, Period: time.Second, Burst: c.RateLimitBurst}
}

// openRateLimiter returns the limiter RATE_LIMIT asks for: shared by every
// replica through Redis when REDIS_URL is set (its calls bounded by
// CACHE_TIMEOUT, its keys under CACHE_PREFIX), else in process; nil
// without RATE_LIMIT. The returned func closes it.
func openRateLimiter(cfg config, tel *telemetry.Telemetry, log *slog.Logger) (ports.Limiter, func(), error) {
	if cfg.RateLimit == 0 {
		return nil, func() {}, nil
	}
	lim := cfg.rateLimit()
	if cfg.RedisURL == "" {
		log.Info("rate limit per credential, per replica", "limit", fmt.Sprintf("%d/s", lim.Rate), "burst", lim.Burst)
		return memlimit.New(memlimit.Options{}), func() {}, nil
	}
	uo, err := rediscache.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// The cache adapter's client: the same timeouts, redials and tracing.
	c := rediscache.New(uo, rediscache.Options{Timeout: cfg.CacheTimeout, TracerProvider: tel.ClientTracerProvider()})
	log.Info("rate limit per credential, shared by every replica through Redis", "limit", fmt.Sprintf("%d/s", lim.Rate), "burst", lim.Burst)
	return redislimit.New(c.Client(), redislimit.Options{KeyPrefix: cfg.CachePrefix + "ratelimit:", Timeout: cfg.CacheTimeout}),
		func() { c.Close() }, nil
}
