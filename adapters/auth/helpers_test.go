package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// Test keys, made once: RSA key generation is slow.
var (
	rsaKey1     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey2     = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaAttacker = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaSmall    = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
	ecKey1      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ecAttacker  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	ecP384      = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is one JSON Web Key; extra holds optional members (alg, use).
func rsaJWK(kid string, k *rsa.PublicKey, extra ...string) map[string]any {
	m := map[string]any{
		"kty": "RSA", "kid": kid,
		"n": b64(k.N.Bytes()),
		"e": b64(big.NewInt(int64(k.E)).Bytes()),
	}
	addExtra(m, extra)
	return m
}

func ecJWK(kid string, k *ecdsa.PublicKey, extra ...string) map[string]any {
	pt, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	size := (len(pt) - 1) / 2
	crv := map[int]string{32: "P-256", 48: "P-384"}[size]
	m := map[string]any{
		"kty": "EC", "kid": kid, "crv": crv,
		"x": b64(pt[1 : 1+size]),
		"y": b64(pt[1+size:]),
	}
	addExtra(m, extra)
	return m
}

func addExtra(m map[string]any, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
}

// jwksServer serves a JWK Set that a test can replace, or an error status.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32 // 0: 200 with body
	hits   atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if st := s.status.Load(); st != 0 {
			http.Error(w, "unavailable", int(st))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	s.body.Store(&b)
}

// standardKeys is the JWK Set of the main tests.
func standardKeys() []map[string]any {
	return []map[string]any{
		rsaJWK("rsa-1", &rsaKey1().PublicKey, "use", "sig", "alg", "RS256"),
		ecJWK("ec-1", &ecKey1().PublicKey, "use", "sig"),
		rsaJWK("rsa-enc", &rsaKey2().PublicKey, "use", "enc"),
		rsaJWK("rsa-small", &rsaSmall().PublicKey),
		ecJWK("ec-384", &ecP384().PublicKey),
	}
}

func newJWT(t testing.TB, cfg JWTConfig) *JWT {
	t.Helper()
	j, err := NewJWT(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	t.Cleanup(j.Close)
	return j
}

// sign makes a token with claims, signed by key with method; header
// members (kid) are added from kv.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, kv ...string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for i := 0; i+1 < len(kv); i += 2 {
		tok.Header[kv[i]] = kv[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// raw assembles a token from a header and payload (each JSON-encoded unless
// already a string) and a signature segment, signing nothing.
func raw(header, payload any, sig string) string {
	enc := func(v any) string {
		if s, ok := v.(string); ok {
			return b64([]byte(s))
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b64(b)
	}
	return enc(header) + "." + enc(payload) + "." + sig
}

// claimsFor returns valid claims for sub with scope, expiring in an hour.
func claimsFor(sub any, scope any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Add(-time.Minute).Unix(),
	}
	if sub != nil {
		c["sub"] = sub
	}
	if scope != nil {
		c["scope"] = scope
	}
	return c
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

func rsaPublicPEM(k *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
