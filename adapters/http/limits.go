package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/time/rate"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Abuse limits (issue 13), applied by admit to every request that needs
// credentials, on every surface:
//
//   - failed authentications per client address (Config.AuthFailures):
//     an address that used up its failures is answered 429
//     too-many-failures before its credentials are even looked at, so a
//     flood of bad tokens costs no store query. Per replica, in a bounded
//     table; an IPv6 client counts by its /64, which one host usually
//     holds whole.
//   - requests per principal (Config.RateLimiter, Config.RateLimit):
//     429 rate-limited beyond the limit, shared by every replica when the
//     limiter is (Redis). A limiter that fails lets requests through.
//
// Health probes, /metrics, the docs and the UI need no credentials and are
// never limited.

// failureTableSize bounds the addresses whose failures are counted (about
// 210 bytes each); beyond it the least recently seen is forgotten.
const failureTableSize = 10_000

// abuseLimits is the Server's share of abuse limiting.
type abuseLimits struct {
	trusted  trustedProxies
	failures *failureLimiter // nil: unlimited
	limiter  ports.Limiter   // nil: no rate limit
	limit    ports.Limit
	// lastWarn is when a limiter error was last logged (unix nanos).
	lastWarn atomic.Int64

	authFailures   metric.Int64Counter
	authThrottled  metric.Int64Counter
	rateLimited    metric.Int64Counter
	limiterErrors  metric.Int64Counter
	limiterLogFreq time.Duration
}

func newAbuseLimits(cfg Config) *abuseLimits {
	l := &abuseLimits{trusted: trustedProxies(cfg.TrustedProxies), limiterLogFreq: time.Minute}
	if cfg.AuthFailures.Valid() == nil {
		l.failures = newFailureLimiter(cfg.AuthFailures, failureTableSize, time.Now)
	}
	if cfg.RateLimiter != nil && cfg.RateLimit.Valid() == nil {
		l.limiter, l.limit = cfg.RateLimiter, cfg.RateLimit
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = noopmetric.NewMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	for _, c := range []struct {
		dst        *metric.Int64Counter
		name, desc string
	}{
		{&l.authFailures, "activityd.http.auth.failures", "Requests refused 401: credentials missing, malformed or not accepted."},
		{&l.authThrottled, "activityd.http.auth.throttled", "Requests refused 429 because their client address had too many failed authentications."},
		{&l.rateLimited, "activityd.http.rate_limited", "Requests refused 429 because their principal was over its rate limit."},
		{&l.limiterErrors, "activityd.http.rate_limiter.errors", "Rate limiter calls that failed; the request was served unlimited."},
	} {
		var err error
		if *c.dst, err = m.Int64Counter(c.name, metric.WithDescription(c.desc)); err != nil {
			otel.Handle(err) // a usable no-op is returned all the same
		}
	}
	return l
}

// admit authenticates r under the abuse limits, setting the limits'
// headers on w. Its errors render through problemFor: a 429 for a limit.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (domain.Principal, error) {
	l := s.limits
	ctx := context.WithoutCancel(r.Context()) // metrics of abandoned requests count too
	var addr netip.Addr
	var addrKey string
	if l.failures != nil {
		var ok bool
		addr, ok = s.clientIP(r)
		addrKey = failureKey(addr, ok, r.RemoteAddr)
		if wait, blocked := l.failures.blocked(addrKey); blocked {
			l.authThrottled.Add(ctx, 1)
			secs := ceilSeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			return domain.Principal{}, &httpError{status: http.StatusTooManyRequests, slug: slugTooManyFailures,
				detail: fmt.Sprintf("too many failed authentications from this address; retry in %d s", secs)}
		}
	}
	p, err := s.principal(r)
	if err != nil {
		if errors.Is(err, domain.ErrUnauthenticated) {
			l.authFailures.Add(ctx, 1)
			if l.failures != nil && l.failures.failed(addrKey) {
				s.log.WarnContext(r.Context(), "client address refused after repeated failed authentications",
					"client", s.clientAddr(r), "limit", l.failures.describe())
			}
		}
		return domain.Principal{}, err
	}
	if l.limiter == nil {
		return p, nil
	}
	d, err := l.limiter.Allow(r.Context(), p.Name, l.limit)
	if err != nil {
		// Fail open: the limit protects the service, and an outage of the
		// limiter's store must not become an outage of the service.
		l.limiterErrors.Add(ctx, 1)
		now := time.Now().UnixNano()
		last := l.lastWarn.Load()
		if now-last >= int64(l.limiterLogFreq) && l.lastWarn.CompareAndSwap(last, now) {
			s.log.WarnContext(r.Context(), "rate limiter unavailable; requests are served without a rate limit",
				"err", err, "next_warning_in", l.limiterLogFreq)
		}
		return p, nil
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(l.limit.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
	if !d.Allowed {
		l.rateLimited.Add(ctx, 1)
		secs := max(ceilSeconds(d.RetryAfter), 1)
		h.Set("Retry-After", strconv.Itoa(secs))
		return domain.Principal{}, &httpError{status: http.StatusTooManyRequests, slug: slugRateLimited,
			detail: fmt.Sprintf("this credential is over its rate limit of %s; retry in %d s", describe(l.limit), secs)}
	}
	return p, nil
}

// ceilSeconds is d in whole seconds, rounded up, as Retry-After and
// RateLimit-Reset want them.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// describe says a limit in words, e.g. "50 requests per 1s (bursts of 100)".
func describe(l ports.Limit) string {
	return fmt.Sprintf("%d requests per %v (bursts of %d)", l.Rate, l.Period, l.Burst)
}

// failureKey is what failures are counted by: the client address, its /64
// for IPv6 (a host usually holds a whole /64, so counting by address
// would give it 2^64 budgets), or the raw peer when it is no IP address.
func failureKey(a netip.Addr, ok bool, remote string) string {
	switch {
	case !ok:
		return remote
	case a.Is6():
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// failureLimiter counts failed authentications per key, a token bucket
// (x/time/rate) each, in an LRU table of bounded size (hashicorp/golang-lru).
type failureLimiter struct {
	limit ports.Limit
	every rate.Limit
	table *lru.Cache[string, *rate.Limiter]
	now   func() time.Time
}

func newFailureLimiter(limit ports.Limit, size int, now func() time.Time) *failureLimiter {
	t, err := lru.New[string, *rate.Limiter](size)
	if err != nil { // only for size <= 0
		panic(fmt.Sprintf("httpapi: failure table: %v", err))
	}
	return &failureLimiter{limit: limit, every: rate.Limit(float64(limit.Rate) / limit.Period.Seconds()), table: t, now: now}
}

// blocked reports whether key has no failure left, and how long until it
// has one again. A key never seen is not blocked.
func (f *failureLimiter) blocked(key string) (time.Duration, bool) {
	lim, ok := f.table.Get(key)
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(f.now())
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(f.every) * float64(time.Second))), true
}

// failed counts one failure of key, and reports whether it was the one
// that used up key's budget (once per episode: for a log line).
func (f *failureLimiter) failed(key string) (exhausted bool) {
	lim, ok := f.table.Get(key)
	if !ok {
		fresh := rate.NewLimiter(f.every, f.limit.Burst)
		if prev, found, _ := f.table.PeekOrAdd(key, fresh); found {
			lim = prev
		} else {
			lim = fresh
		}
	}
	now := f.now()
	return lim.AllowN(now, 1) && lim.TokensAt(now) < 1
}

// describe says the limit in words.
func (f *failureLimiter) describe() string {
	return fmt.Sprintf("%d failures per %v (bursts of %d)", f.limit.Rate, f.limit.Period, f.limit.Burst)
}
