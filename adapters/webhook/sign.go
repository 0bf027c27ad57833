// Package webhook delivers events to subscribers' URLs: requests signed the
// Standard Webhooks way (https://www.standardwebhooks.com) and sent through a
// client that cannot be pointed at the service's own network (see Guard).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers and secret format.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	// SecretPrefix starts every secret; the rest is the base64 (standard
	// alphabet, padded) of the HMAC key.
	SecretPrefix = "whsec_"

	// DefaultTolerance is how far a webhook-timestamp may be from the
	// receiver's clock when Verify is given no tolerance; the spec's 5 minutes.
	DefaultTolerance = 5 * time.Minute

	secretBytes    = 32 // what NewSecret makes
	minSecretBytes = 24 // the spec's bounds on a key
	maxSecretBytes = 64
	sigVersion     = "v1" // HMAC-SHA256; v1a (Ed25519) is not used here
)

// Errors Verify and Sign wrap, for callers to tell the cases apart with errors.Is.
var (
	ErrSecret    = errors.New("webhook: malformed secret")
	ErrHeaders   = errors.New("webhook: missing or malformed webhook headers")
	ErrTimestamp = errors.New("webhook: timestamp outside the tolerance")
	ErrSignature = errors.New("webhook: no matching signature")
)

// NewSecret makes a signing secret: whsec_ and the base64 of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: reading random bytes for a secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// decodeSecret is the HMAC key of a whsec_ secret; the error never repeats
// the secret itself, which would end up in logs.
func decodeSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrSecret, SecretPrefix)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrSecret, len(key), minSecretBytes, maxSecretBytes)
	}
	return key, nil
}

// mac is HMAC-SHA256(key, "{id}.{unix seconds}.{body}"), the signed content.
func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// validID reports whether id can be a webhook-id: non-empty printable ASCII
// without spaces, so the header carries it unchanged.
func validID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Sign is the webhook-signature header value for one message: "v1,<base64>"
// per secret, separated by single spaces, so a receiver knowing either the
// old or the new secret accepts it while secrets are rotated.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret to sign with", ErrSecret)
	}
	if !validID(id) {
		return "", fmt.Errorf("%w: webhook-id %q is empty or not printable ASCII without spaces", ErrHeaders, id)
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return "", fmt.Errorf("signing with secret %d: %w", i, err)
		}
		sigs = append(sigs, sigVersion+","+base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)))
	}
	return strings.Join(sigs, " "), nil
}

// SetHeaders signs a message and sets webhook-id, webhook-timestamp (Unix
// seconds) and webhook-signature on h; h is left unchanged on error.
func SetHeaders(h http.Header, secrets []string, id string, ts time.Time, body []byte) error {
	sig, err := Sign(secrets, id, ts, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Verify checks a received webhook the way a receiver should: the three
// headers present, the timestamp within tolerance of now (DefaultTolerance
// when tolerance <= 0) so a captured request cannot be replayed later, and one
// of the space-separated v1 signatures matching, compared in constant time.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: %s, %s and %s are all required", ErrHeaders, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrHeaders, HeaderTimestamp, tsText)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts := time.Unix(unix, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %s from now, tolerance %s", ErrTimestamp, HeaderTimestamp, d.Truncate(time.Second), tolerance)
	}
	want := mac(key, id, unix, body)
	for _, vs := range strings.Split(sigs, " ") {
		version, enc, ok := strings.Cut(vs, ",")
		if !ok || version != sigVersion {
			continue // another scheme (v1a) or noise: not ours to judge
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrSignature
}
