package postgres

import (
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

// Token cache: every authenticated request looks its token up, and a
// round trip to PostgreSQL for it cost a fifth of the server's CPU under
// load. Lookups are cached in process, and kept correct across replicas
// with LISTEN/NOTIFY: RevokeToken notifies tokensChannel in its
// transaction, so every replica's listener drops its cache when the
// revocation commits. While the listener is not connected (starting,
// reconnecting) the cache is bypassed, and it is emptied whenever the
// connection is lost or restored, so a notification missed meanwhile
// cannot leave a revoked token cached. An entry also lives at most
// tokenCacheMaxAge. Unknown tokens are never cached.

// tokensChannel is the NOTIFY channel of token changes. Channels are per
// database, not per schema: a change in one schema empties the caches of
// all; that is only a cache miss.
const tokensChannel = "activityd_tokens"

const (
	tokenCacheMaxAge  = 30 * time.Second
	tokenCacheMaxSize = 10_000
)

type tokenCache struct {
	dsn       string
	start     sync.Once
	listener  *pq.Listener
	listening atomic.Bool   // the listener is connected and listening
	gen       atomic.Uint64 // bumped by every change and connection event
	mu        sync.Mutex
	entries   map[string]cachedToken
	done      chan struct{} // closed when watch has returned
}

type cachedToken struct {
	t      domain.Token
	gen    uint64
	expiry time.Time
}

func newTokenCache(dsn string) *tokenCache {
	return &tokenCache{dsn: dsn, entries: map[string]cachedToken{}, done: make(chan struct{})}
}

// get returns the cached token for hash, if any is valid.
func (c *tokenCache) get(hash []byte) (domain.Token, bool) {
	c.start.Do(c.listen)
	if !c.listening.Load() {
		return domain.Token{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[string(hash)]
	c.mu.Unlock()
	if !ok || e.gen != c.gen.Load() || time.Now().After(e.expiry) {
		return domain.Token{}, false
	}
	return e.t, true
}

// generation is read before a lookup in storage; put keeps its result
// only if nothing changed since.
func (c *tokenCache) generation() uint64 { return c.gen.Load() }

func (c *tokenCache) put(hash []byte, t domain.Token, gen uint64) {
	if !c.listening.Load() || c.gen.Load() != gen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= tokenCacheMaxSize {
		clear(c.entries)
	}
	c.entries[string(hash)] = cachedToken{t: t, gen: gen, expiry: time.Now().Add(tokenCacheMaxAge)}
}

// invalidate drops every entry.
func (c *tokenCache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// listen starts the listener, in the background: until it listens, the
// cache is bypassed.
func (c *tokenCache) listen() {
	c.listener = pq.NewDialListener(dialer{}, c.dsn, time.Second, 30*time.Second, func(ev pq.ListenerEventType, _ error) {
		switch ev {
		case pq.ListenerEventReconnected: // the LISTEN is issued again before this
			c.invalidate()
			c.listening.Store(true)
		case pq.ListenerEventDisconnected, pq.ListenerEventConnectionAttemptFailed:
			c.listening.Store(false)
			c.invalidate()
		}
	})
	go func() {
		// Blocks until connected; once it returns nil, notifications flow.
		if err := c.listener.Listen(tokensChannel); err == nil {
			c.invalidate()
			c.listening.Store(true)
		}
	}()
	go c.watch()
}

// watch empties the cache at every notification (a nil one means the
// connection was re-established and some may have been missed).
func (c *tokenCache) watch() {
	defer close(c.done)
	for range c.listener.NotificationChannel() {
		c.invalidate()
	}
}

// close stops the listener, if it was started.
func (c *tokenCache) close() {
	started := true
	c.start.Do(func() { started = false }) // not started: now it never will be
	if !started {
		return
	}
	c.listening.Store(false)
	if c.listener != nil {
		_ = c.listener.Close()
		<-c.done
	}
}

var statementCacheParam = regexp.MustCompile(`(?i)(^|\s)statement_cache=\S*`)

// listenerDSN is the DSN the pool was opened with, less the parameters of
// this package (statement_cache), which the server would refuse, and with
// application_name activityd-listener unless it names one.
func listenerDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		for k := range q {
			if strings.EqualFold(k, "statement_cache") {
				q.Del(k)
			}
		}
		if q.Get("application_name") == "" {
			q.Set("application_name", listenerName)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	dsn = strings.Join(strings.Fields(statementCacheParam.ReplaceAllString(dsn, " ")), " ")
	if !strings.Contains(dsn, "application_name=") {
		dsn += " application_name=" + listenerName
	}
	return dsn
}

// listenerName is the listener connection's application_name.
const listenerName = "activityd-listener"

// notifyTokens is the statement that tells every replica's token cache
// that tokens changed; run it in the transaction that changes them.
const notifyTokens = `SELECT pg_notify('` + tokensChannel + `', '')`
