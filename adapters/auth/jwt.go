// Package auth authenticates the credentials a client sends in
// `Authorization: Bearer <credential>`: JSON Web Tokens (HS256 with a shared
// secret, RS256/ES256 with keys from a JWKS endpoint) and, through Chain,
// the service's own API tokens.
//
// Every failure is an error matching domain.ErrUnauthenticated whose text is
// a short reason that is safe to show a client; a token is never echoed.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/activityd/activityd/domain"
)

// Defaults and limits.
const (
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
	// JWTConfig.Leeway is 0.
	DefaultLeeway = 30 * time.Second
	// MinSecretLen is the shortest HS256 secret accepted (RFC 7518 §3.2: a
	// key of at least the hash size, 256 bits).
	MinSecretLen = 32
	// MaxTokenLen bounds the credential Authenticate will parse.
	MaxTokenLen = 16 << 10
	// maxSubLen bounds the sub claim, which ends up in Principal.Name.
	maxSubLen = 256

	jwksHTTPTimeout = 5 * time.Second
	// jwksRefreshInterval is how often the key set is fetched in the
	// background, so a key removed from it (revoked) stops being accepted.
	jwksRefreshInterval = 15 * time.Minute
	// jwksUnknownKIDInterval rate-limits the fetch a token with an unknown
	// kid triggers (key rotation, or a key set that could not be fetched
	// at start): at most one per interval, so forged kids cannot make the
	// service hammer the identity provider.
	jwksUnknownKIDInterval = time.Minute
	// maxJWKSBytes bounds a JWKS response body.
	maxJWKSBytes = 1 << 20
)

// The algorithms accepted, each only with a key from its own source.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// JWTConfig configures JWT authentication. At least one of Secret and
// JWKSURL must be set.
type JWTConfig struct {
	Secret   []byte        // HS256 key (JWT_SECRET); HS256 accepted only when set
	JWKSURL  string        // RS256/ES256 keys (JWT_JWKS_URL); those algs accepted only when set
	Issuer   string        // checked when set (JWT_ISSUER)
	Audience string        // checked when set (JWT_AUDIENCE)
	Leeway   time.Duration // clock skew allowed on exp/nbf/iat; 0 → 30s

	HTTPClient *http.Client // for JWKS fetches; nil → a client with a 5s timeout
	// Logger receives warnings about the JWKS (unreachable at start, failed
	// refreshes); nil → slog.Default().
	Logger *slog.Logger

	// For tests: override jwksRefreshInterval and jwksUnknownKIDInterval.
	refreshInterval    time.Duration
	unknownKIDInterval time.Duration
}

// JWT authenticates JSON Web Tokens. It is safe for concurrent use.
type JWT struct {
	secret  []byte
	keys    jwkset.Storage // nil unless JWKSURL is set
	methods []string       // accepted algorithms
	parser  *jwt.Parser
	issuer  string
	aud     string

	cancel    context.CancelFunc
	closeOnce sync.Once
}

// NewJWT returns a JWT authenticator for cfg.
//
// With JWKSURL set, it fetches the key set before returning (bounded by ctx
// and a 5s timeout) and then keeps it fresh in the background until Close;
// ctx ending later does not stop that refresh. A key set
// that cannot be fetched at start does not fail start-up: the identity
// provider being briefly down must not take the service (and its API-token
// clients) down with it. NewJWT then logs a warning naming JWT_JWKS_URL and
// starts with no keys; RS256/ES256 tokens get 401 until a fetch succeeds,
// which the first token with an unknown kid triggers (at most once a
// minute) and the background refresh retries every 15 minutes. A JWKSURL
// that is not an http(s) URL is a configuration error and fails at once.
func NewJWT(ctx context.Context, cfg JWTConfig) (*JWT, error) {
	if len(cfg.Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("JWT authentication needs JWT_SECRET or JWT_JWKS_URL")
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT_SECRET must be at least %d bytes (256 bits) for HS256", MinSecretLen)
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("JWT leeway must not be negative")
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}

	j := &JWT{issuer: cfg.Issuer, aud: cfg.Audience, cancel: func() {}}
	if len(cfg.Secret) > 0 {
		j.secret = slices.Clone(cfg.Secret)
		j.methods = append(j.methods, algHS256)
	}
	if cfg.JWKSURL != "" {
		if err := j.openJWKS(ctx, cfg, log); err != nil {
			return nil, err
		}
		j.methods = append(j.methods, algRS256, algES256)
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(j.methods),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

func (j *JWT) openJWKS(ctx context.Context, cfg JWTConfig, log *slog.Logger) error {
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("JWT_JWKS_URL must be an http:// or https:// URL")
	}
	shown := u.Redacted()

	client := &http.Client{Timeout: jwksHTTPTimeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	client.Transport = limitBody{next: client.Transport}

	refreshEvery := cfg.refreshInterval
	if refreshEvery <= 0 {
		refreshEvery = jwksRefreshInterval
	}
	unknownEvery := cfg.unknownKIDInterval
	if unknownEvery <= 0 {
		unknownEvery = jwksUnknownKIDInterval
	}

	// The first fetch happens inside NewDefaultOverrideCtx, synchronously;
	// its failure reaches the refresh error handler while starting is set.
	var (
		mu               sync.Mutex
		starting         = true
		startErr         error
		startWithoutKeys = true
	)
	handler := func(string) func(context.Context, error) {
		return func(ctx context.Context, err error) {
			mu.Lock()
			if starting {
				startErr = err
				mu.Unlock()
				return
			}
			mu.Unlock()
			log.WarnContext(ctx, "JWT_JWKS_URL: could not refresh the JWT key set; keeping the keys already loaded",
				"url", shown, "err", err)
		}
	}

	// The background refresh lives until Close, not until ctx ends (a
	// start-up deadline must not stop it later); ctx does bound the first
	// fetch.
	if err := ctx.Err(); err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	kf, err := keyfunc.NewDefaultOverrideCtx(bg, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               jwksHTTPTimeout,
		NoErrorReturnFirstHTTPReq: &startWithoutKeys,
		RateLimitWaitMax:          jwksHTTPTimeout,
		RefreshErrorHandlerFunc:   handler,
		RefreshInterval:           refreshEvery,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(unknownEvery), 1),
	})
	if !stop() {
		cancel()
		return fmt.Errorf("JWT_JWKS_URL %s: start-up cancelled: %w", shown, ctx.Err())
	}
	if err != nil {
		cancel()
		return fmt.Errorf("JWT_JWKS_URL %s: %w", shown, err)
	}
	mu.Lock()
	starting = false
	failed := startErr
	mu.Unlock()
	if failed != nil {
		log.WarnContext(ctx, "JWT_JWKS_URL: could not fetch the JWT key set at start; "+
			"RS256/ES256 tokens are refused until it loads, retried on the next token with an unknown kid "+
			"(at most once per interval) and in the background",
			"url", shown, "err", failed, "retry_interval", unknownEvery, "refresh_interval", refreshEvery)
	}
	j.keys = kf.Storage()
	j.cancel = cancel
	return nil
}

// Close stops the background refresh of the key set. It is safe to call
// more than once.
func (j *JWT) Close() {
	if j == nil {
		return
	}
	j.closeOnce.Do(j.cancel)
}

// claims are the claims activityd reads.
type claims struct {
	jwt.RegisteredClaims
	Scope scopeClaim `json:"scope"`
}

// scopeClaim is the scope claim: a space-separated string (RFC 8693), or,
// as some identity providers send it, an array of strings.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope must be a string or an array of strings")
	}
	out := []string{}
	for _, e := range list {
		out = append(out, strings.Fields(e)...)
	}
	*s = out
	return nil
}

// reason is a failure whose text is safe to show a client.
type reason string

func (r reason) Error() string { return string(r) }

func unauthenticated(why string) error {
	return fmt.Errorf("%w: %s", domain.ErrUnauthenticated, why)
}

// Authenticate verifies token and returns the principal it stands for, or
// an error matching domain.ErrUnauthenticated with a reason safe to show a
// client. ctx bounds a key-set refresh an unknown kid may trigger.
func (j *JWT) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	if j == nil {
		return domain.Principal{}, unauthenticated("JWT authentication is not configured")
	}
	switch {
	case token == "":
		return domain.Principal{}, unauthenticated("missing token")
	case len(token) > MaxTokenLen:
		return domain.Principal{}, unauthenticated("token too large")
	}
	var c claims
	tok, err := j.parser.ParseWithClaims(token, &c, j.keyfunc(ctx))
	if err != nil {
		return domain.Principal{}, unauthenticated(j.reasonFor(tok, &c, err))
	}
	return principal(&c)
}

// keyfunc returns the key for a token's algorithm from that algorithm's own
// source: the HMAC secret only for HS256, JWKS keys only for RS256/ES256,
// and of the matching key type. So a token "signed" with HS256 using an RSA
// public key as the HMAC secret never meets that key.
func (j *JWT) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 §4.1.11: critical extensions we do not understand.
			return nil, reason("unsupported critical header (crit)")
		}
		switch alg := t.Method.Alg(); {
		case alg == algHS256 && j.secret != nil:
			return j.secret, nil
		case (alg == algRS256 || alg == algES256) && j.keys != nil:
			return j.jwksKey(ctx, t, alg)
		default: // unreachable: WithValidMethods ran first
			return nil, reason("signing algorithm not accepted")
		}
	}
}

func (j *JWT) jwksKey(ctx context.Context, t *jwt.Token, alg string) (any, error) {
	kidv, hasKID := t.Header["kid"]
	if !hasKID {
		// One key per issuer is common enough that some omit kid: try
		// every key that fits the algorithm.
		all, err := j.keys.KeyReadAll(ctx)
		if err != nil {
			return nil, reason("no signing key available")
		}
		var set jwt.VerificationKeySet
		for _, k := range all {
			if key, ok := usable(k, alg); ok {
				set.Keys = append(set.Keys, key)
			}
		}
		if len(set.Keys) == 0 {
			return nil, reason("no signing key for the token's algorithm")
		}
		return set, nil
	}
	kid, ok := kidv.(string)
	if !ok || kid == "" {
		return nil, reason("malformed token: kid must be a non-empty string")
	}
	k, err := j.keys.KeyRead(ctx, kid)
	if err != nil {
		// Not found even after a (rate-limited) refresh of the key set.
		return nil, reason("unknown signing key (kid)")
	}
	key, ok := usable(k, alg)
	if !ok {
		return nil, reason("signing key does not fit the token's algorithm")
	}
	return key, nil
}

// usable returns the public key of k if k may verify a signature made with
// alg: a signing key (use absent or "sig"), declared for alg or for no alg,
// of the type alg needs (RSA of at least 2048 bits for RS256, P-256 for
// ES256).
func usable(k jwkset.JWK, alg string) (any, bool) {
	m := k.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, false
	}
	if m.ALG != "" && string(m.ALG) != alg {
		return nil, false
	}
	key := k.Key()
	switch pk := key.(type) {
	case *rsa.PrivateKey:
		key = &pk.PublicKey
	case *ecdsa.PrivateKey:
		key = &pk.PublicKey
	}
	switch pk := key.(type) {
	case *rsa.PublicKey:
		return pk, alg == algRS256 && pk.N != nil && pk.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return pk, alg == algES256 && pk.Curve == elliptic.P256()
	}
	return nil, false
}

// reasonFor turns a parse error into a reason safe to show a client.
func (j *JWT) reasonFor(tok *jwt.Token, c *claims, err error) string {
	var r reason
	if errors.As(err, &r) {
		return string(r)
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case tok == nil || tok.Method == nil || !slices.Contains(j.methods, tok.Method.Alg()):
		// Also alg "none", an unknown alg, or a missing one.
		return "signing algorithm not accepted (accepted: " + strings.Join(j.methods, ", ") + ")"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future (iat)"
	case c.ExpiresAt == nil:
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer),
		j.issuer != "" && c.Issuer == "" && errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "wrong issuer (iss)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience),
		j.aud != "" && len(c.Audience) == 0 && errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "wrong audience (aud)"
	default:
		return "invalid token"
	}
}

// principal maps verified claims to a principal. sub is the user id; a sub
// that is not one is accepted only with the admin scope (UserID 0). Scopes
// activityd does not know are ignored, since tokens from a shared identity
// provider carry others; a token with none of ours authenticates with no
// scopes, so authorisation refuses it with 403.
func principal(c *claims) (domain.Principal, error) {
	sub := c.Subject
	switch {
	case sub == "":
		return domain.Principal{}, unauthenticated("token has no sub claim")
	case len(sub) > maxSubLen:
		return domain.Principal{}, unauthenticated("sub claim too long")
	case !utf8.ValidString(sub) || strings.ContainsFunc(sub, unicode.IsControl):
		return domain.Principal{}, unauthenticated("sub claim holds invalid characters")
	}
	var scopes []domain.Scope
	for _, f := range c.Scope {
		// One scope per token: "events:read,admin" is someone else's
		// scope, not two of ours.
		sc, err := domain.ParseScopes(f)
		if err != nil || len(sc) != 1 || string(sc[0]) != f || slices.Contains(scopes, sc[0]) {
			continue
		}
		scopes = append(scopes, sc[0])
	}
	p := domain.Principal{Name: "jwt:" + sub, Scopes: scopes, Kind: domain.KindJWT}
	if c.ExpiresAt != nil { // required by the parser; checked again for safety
		p.ExpiresAt = c.ExpiresAt.UTC()
	}
	if id, err := strconv.ParseInt(sub, 10, 64); err == nil && id > 0 && strconv.FormatInt(id, 10) == sub {
		p.UserID = id
	} else if !p.IsAdmin() {
		return domain.Principal{}, unauthenticated("sub must be a positive decimal user id unless the token carries the admin scope")
	}
	return p, nil
}

// LooksLikeJWT reports whether a credential has the shape
// header.payload.signature: three non-empty base64url segments whose first
// decodes to a JSON object. API tokens (prefix adt_, no dots) never do, nor
// does an operator-chosen token that merely contains two dots.
func LooksLikeJWT(s string) bool {
	if len(s) > MaxTokenLen {
		// Still a JWT's shape, perhaps; Authenticate refuses it as too large.
		s = s[:MaxTokenLen]
	}
	header, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || !isB64URL(header) || !isB64URL(payload) || !isB64URL(sig) {
		return false
	}
	h, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return false
	}
	h = []byte(strings.TrimLeft(string(h), " \t\r\n"))
	return len(h) > 0 && h[0] == '{'
}

func isB64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// limitBody bounds JWKS response bodies.
type limitBody struct{ next http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	next := l.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxJWKSBytes), resp.Body}
	return resp, nil
}
