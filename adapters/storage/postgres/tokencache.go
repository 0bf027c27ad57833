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
// with LISTEN/NOTIFY: CreateToken and RevokeToken notify tokensChannel in
// their transaction, so every replica's listener drops its cache when the
// change commits. While the listener is not connected (starting,
// reconnecting) the cache is bypassed, and it is emptied whenever the
// connection is lost or restored, so a notification missed meanwhile
// cannot leave a revoked token cached. An entry also lives at most
// tokenCacheMaxAge.
//
// Unknown hashes are cached too (a negative cache), in a map of their own
// so that a flood of random secrets can neither grow memory past
// tokenCacheMaxMisses nor push known tokens out. A creation notifies like
// a revocation, so a token created on any replica is never answered
// "unknown" from memory after its notification. With both caches a known,
// a revoked and a never-issued token are all answered from memory after
// their first lookup, in the same time: timing does not tell whether a
// secret exists (issue 13).

// tokensChannel is the NOTIFY channel of token changes. Channels are per
// database, not per schema: a change in one schema empties the caches of
// all; that is only a cache miss.
const tokensChannel = "activityd_tokens"

const (
	tokenCacheMaxAge  = 30 * time.Second
	tokenCacheMaxSize = 10_000
	// tokenCacheMaxMisses bounds the negative cache (about 100 bytes an
	// entry).
	tokenCacheMaxMisses = 10_000
)

type tokenCache struct {
	dsn       string
	start     sync.Once
	listener  *pq.Listener
	listening atomic.Bool   // the listener is connected and listening
	gen       atomic.Uint64 // bumped by every change and connection event
	mu        sync.Mutex
	entries   map[string]cachedToken
	missing   map[string]cachedMiss // hashes no token has (the negative cache)
	done      chan struct{}         // closed when watch has returned
}

type cachedToken struct {
	t      domain.Token
	gen    uint64
	expiry time.Time
}

type cachedMiss struct {
	gen    uint64
	expiry time.Time
}

func newTokenCache(dsn string) *tokenCache {
	return &tokenCache{dsn: dsn, entries: map[string]cachedToken{}, missing: map[string]cachedMiss{},
		done: make(chan struct{})}
}

// get answers a lookup of hash from memory when it can: ok is true when
// it did, and then absent tells whether no token has hash (else t is it).
// Known and unknown hashes take the same path: one lock, two map reads.
func (c *tokenCache) get(hash []byte) (t domain.Token, absent, ok bool) {
	c.start.Do(c.listen)
	if !c.listening.Load() {
		return domain.Token{}, false, false
	}
	now := time.Now()
	c.mu.Lock()
	e, found := c.entries[string(hash)]
	m, miss := c.missing[string(hash)]
	c.mu.Unlock()
	gen := c.gen.Load()
	switch {
	case found && e.gen == gen && now.Before(e.expiry):
		return e.t, false, true
	case miss && m.gen == gen && now.Before(m.expiry):
		return domain.Token{}, true, true
	}
	return domain.Token{}, false, false
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

// putMissing remembers that no token has hash, if nothing changed since
// gen was read (a creation notified meanwhile may have made one). At the
// bound the negative cache starts over: the known tokens stay.
func (c *tokenCache) putMissing(hash []byte, gen uint64) {
	if !c.listening.Load() || c.gen.Load() != gen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.missing) >= tokenCacheMaxMisses {
		clear(c.missing)
	}
	c.missing[string(hash)] = cachedMiss{gen: gen, expiry: time.Now().Add(tokenCacheMaxAge)}
}

// invalidate drops every entry, known and unknown.
func (c *tokenCache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	clear(c.entries)
	clear(c.missing)
	c.mu.Unlock()
}

// sizes is how many known and unknown hashes are cached.
func (c *tokenCache) sizes() (known, unknown int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), len(c.missing)
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
