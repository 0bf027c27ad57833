package webhook_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/activityd/activityd/adapters/webhook"
)

// The official Standard Webhooks Go library is the independent judge here:
// what Sign makes must pass its Verify, and what its Sign makes must pass
// ours. Its Verify checks the timestamp against time.Now with 5 minutes of
// tolerance, so messages it verifies are stamped now.

// specSecret, specID, specTS, specBody and specSig are the example of the
// Standard Webhooks spec and libraries.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// official is the library's webhook for secret.
func official(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("official library refuses secret: %v", err)
	}
	return wh
}

// signed is a header set by SetHeaders.
func signed(t *testing.T, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	h := http.Header{}
	if err := webhook.SetHeaders(h, secrets, id, ts, body); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSignSpecExample(t *testing.T) {
	got, err := webhook.Sign([]string{specSecret}, specID, time.Unix(specTS, 0), []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSig {
		t.Fatalf("Sign = %q, want the spec's %q", got, specSig)
	}
}

func TestNewSecret(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	if a == b {
		t.Fatal("two secrets are equal")
	}
	for _, s := range []string{a, b} {
		enc, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("secret %q lacks whsec_", s)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			t.Fatalf("secret %q: %d bytes, %v; want 32 bytes of base64", s, len(key), err)
		}
		official(t, s) // the library takes it too
	}
}

func TestSetHeadersOfficialVerifies(t *testing.T) {
	secret := newSecret(t)
	now := time.Now()
	body := []byte(`{"type":"event.created","data":{"id":"0190"}}`)
	h := signed(t, []string{secret}, "msg_1", now, body)

	if got, want := h.Get("webhook-id"), "msg_1"; got != want {
		t.Errorf("webhook-id = %q, want %q", got, want)
	}
	if got, want := h.Get("webhook-timestamp"), strconv.FormatInt(now.Unix(), 10); got != want {
		t.Errorf("webhook-timestamp = %q, want Unix seconds %q", got, want)
	}
	if sig := h.Get("webhook-signature"); !strings.HasPrefix(sig, "v1,") || strings.Contains(sig, " ") {
		t.Errorf("webhook-signature = %q, want one v1 signature", sig)
	}
	if err := official(t, secret).Verify(body, h); err != nil {
		t.Fatalf("official Verify: %v", err)
	}
	if err := official(t, newSecret(t)).Verify(body, h); err == nil {
		t.Fatal("official Verify accepts a signature made with another secret")
	}
}

func TestRotationOfficialVerifies(t *testing.T) {
	oldSecret, newSec, other := newSecret(t), newSecret(t), newSecret(t)
	body := []byte(`{"n":1}`)
	h := signed(t, []string{oldSecret, newSec}, "msg_rot", time.Now(), body)

	if sigs := strings.Split(h.Get("webhook-signature"), " "); len(sigs) != 2 {
		t.Fatalf("webhook-signature %q: want two signatures separated by one space", h.Get("webhook-signature"))
	}
	for name, s := range map[string]string{"old only": oldSecret, "new only": newSec} {
		if err := official(t, s).Verify(body, h); err != nil {
			t.Errorf("receiver knowing the %s secret: %v", name, err)
		}
		if err := webhook.Verify(s, h, body, time.Now(), 0); err != nil {
			t.Errorf("our Verify knowing the %s secret: %v", name, err)
		}
	}
	if err := official(t, other).Verify(body, h); err == nil {
		t.Error("a receiver knowing neither secret accepts")
	}
}

// officialHeaders is a header signed by the library with each secret,
// signatures joined by spaces the way a rotating sender does.
func officialHeaders(t *testing.T, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	var sigs []string
	for _, s := range secrets {
		sig, err := official(t, s).Sign(id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	return h
}

func TestVerifyAcceptsOfficial(t *testing.T) {
	oldSecret, newSec := newSecret(t), newSecret(t)
	ts := time.Unix(1_700_000_000, 0)
	body := []byte(`{"hello":"world"}`)

	single := officialHeaders(t, []string{oldSecret}, "msg_a", ts, body)
	if err := webhook.Verify(oldSecret, single, body, ts, time.Minute); err != nil {
		t.Errorf("Verify of the library's signature: %v", err)
	}
	rotated := officialHeaders(t, []string{oldSecret, newSec}, "msg_b", ts, body)
	for name, s := range map[string]string{"old": oldSecret, "new": newSec} {
		if err := webhook.Verify(s, rotated, body, ts, time.Minute); err != nil {
			t.Errorf("Verify with the %s secret of a rotated header: %v", name, err)
		}
	}
	// Other schemes' signatures and noise are skipped, not fatal.
	noisy := rotated.Clone()
	noisy.Set("webhook-signature", "v1a,Zm9v v1,!!! "+rotated.Get("webhook-signature"))
	if err := webhook.Verify(newSec, noisy, body, ts, time.Minute); err != nil {
		t.Errorf("Verify with a v1a and a garbled signature first: %v", err)
	}
	if err := webhook.Verify(specSecret, specHeader(), []byte(specBody), time.Unix(specTS, 0), 0); err != nil {
		t.Errorf("Verify of the spec example: %v", err)
	}
}

func specHeader() http.Header {
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTS))
	h.Set("webhook-signature", specSig)
	return h
}

func TestVerifyRefuses(t *testing.T) {
	secret := newSecret(t)
	ts := time.Unix(1_700_000_000, 0)
	body := []byte(`{"amount":100}`)
	good := officialHeaders(t, []string{secret}, "msg_1", ts, body)
	if err := webhook.Verify(secret, good, body, ts, 5*time.Minute); err != nil {
		t.Fatalf("the untampered message: %v", err)
	}
	with := func(key, value string) http.Header {
		h := good.Clone()
		h.Set(key, value)
		return h
	}
	without := func(key string) http.Header {
		h := good.Clone()
		h.Del(key)
		return h
	}
	tests := []struct {
		name   string
		secret string
		h      http.Header
		body   string
		now    time.Time
		want   error
	}{
		{"tampered body", secret, good, `{"amount":999}`, ts, webhook.ErrSignature},
		{"tampered id", secret, with("webhook-id", "msg_2"), string(body), ts, webhook.ErrSignature},
		{"tampered timestamp", secret, with("webhook-timestamp", strconv.FormatInt(ts.Unix()+1, 10)), string(body), ts, webhook.ErrSignature},
		{"another secret", newSecret(t), good, string(body), ts, webhook.ErrSignature},
		{"expired", secret, good, string(body), ts.Add(5*time.Minute + time.Second), webhook.ErrTimestamp},
		{"from the future", secret, good, string(body), ts.Add(-5*time.Minute - time.Second), webhook.ErrTimestamp},
		{"timestamp in milliseconds", secret, with("webhook-timestamp", strconv.FormatInt(ts.UnixMilli(), 10)), string(body), ts, webhook.ErrTimestamp},
		{"timestamp not a number", secret, with("webhook-timestamp", "yesterday"), string(body), ts, webhook.ErrHeaders},
		{"no id", secret, without("webhook-id"), string(body), ts, webhook.ErrHeaders},
		{"no timestamp", secret, without("webhook-timestamp"), string(body), ts, webhook.ErrHeaders},
		{"no signature", secret, without("webhook-signature"), string(body), ts, webhook.ErrHeaders},
		{"only another version", secret, with("webhook-signature", strings.Replace(good.Get("webhook-signature"), "v1,", "v2,", 1)), string(body), ts, webhook.ErrSignature},
		{"signature cut short", secret, with("webhook-signature", good.Get("webhook-signature")[:20]), string(body), ts, webhook.ErrSignature},
		{"malformed secret", "whsec_%%%", good, string(body), ts, webhook.ErrSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(tt.secret, tt.h, []byte(tt.body), tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// The boundary itself is inside the tolerance.
	if err := webhook.Verify(secret, good, body, ts.Add(5*time.Minute), 5*time.Minute); err != nil {
		t.Errorf("exactly at the tolerance: %v", err)
	}
}

func TestOfficialRefusesTampered(t *testing.T) {
	secret := newSecret(t)
	body := []byte(`{"amount":100}`)
	now := time.Now()
	good := signed(t, []string{secret}, "msg_1", now, body)
	tampered := func(key, value string) http.Header {
		h := good.Clone()
		h.Set(key, value)
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		body string
	}{
		{"body", good, `{"amount":999}`},
		{"id", tampered("webhook-id", "msg_2"), string(body)},
		{"timestamp", tampered("webhook-timestamp", strconv.FormatInt(now.Unix()-1, 10)), string(body)},
		{"expired", signed(t, []string{secret}, "msg_1", now.Add(-10*time.Minute), body), string(body)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := official(t, secret).Verify([]byte(tt.body), tt.h); err == nil {
				t.Fatal("official Verify accepts it")
			}
		})
	}
}

func TestMalformedSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct{ name, secret string }{
		{"empty", ""},
		{"prefix only", "whsec_"},
		{"no prefix", b64(32)},
		{"another prefix", "whsk_" + b64(32)},
		{"not base64", "whsec_not base64!"},
		{"unpadded base64", "whsec_" + strings.TrimRight(b64(32), "=")},
		{"too short (23 bytes)", "whsec_" + b64(23)},
		{"too long (65 bytes)", "whsec_" + b64(65)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.Sign([]string{tt.secret}, "msg_1", time.Now(), nil); !errors.Is(err, webhook.ErrSecret) {
				t.Errorf("Sign = %v, want ErrSecret", err)
			}
			if err := webhook.Verify(tt.secret, specHeader(), []byte(specBody), time.Unix(specTS, 0), 0); !errors.Is(err, webhook.ErrSecret) {
				t.Errorf("Verify = %v, want ErrSecret", err)
			}
			if tt.secret != "" && strings.Contains(errText(webhook.Sign([]string{tt.secret}, "m", time.Now(), nil)), tt.secret) {
				t.Error("the error repeats the secret")
			}
		})
	}
	// One bad secret among good ones fails the whole signature, and so
	// does having none; SetHeaders then leaves the header alone.
	if _, err := webhook.Sign([]string{newSecret(t), "whsec_"}, "msg_1", time.Now(), nil); !errors.Is(err, webhook.ErrSecret) {
		t.Errorf("Sign with one bad secret of two = %v, want ErrSecret", err)
	}
	if _, err := webhook.Sign(nil, "msg_1", time.Now(), nil); !errors.Is(err, webhook.ErrSecret) {
		t.Errorf("Sign with no secret = %v, want ErrSecret", err)
	}
	h := http.Header{}
	if err := webhook.SetHeaders(h, []string{"whsec_"}, "msg_1", time.Now(), nil); err == nil || len(h) != 0 {
		t.Errorf("SetHeaders with a bad secret = %v, header %v; want an error and no header", err, h)
	}
	// Edges of the spec's 24-64 bytes are fine.
	for _, n := range []int{24, 64} {
		if _, err := webhook.Sign([]string{"whsec_" + b64(n)}, "msg_1", time.Now(), nil); err != nil {
			t.Errorf("a %d-byte key: %v", n, err)
		}
	}
}

func TestSignRefusesBadID(t *testing.T) {
	for _, id := range []string{"", "msg 1", "msg\r\n1", "msg_é"} {
		if _, err := webhook.Sign([]string{newSecret(t)}, id, time.Now(), nil); !errors.Is(err, webhook.ErrHeaders) {
			t.Errorf("Sign with id %q = %v, want ErrHeaders", id, err)
		}
	}
}

func errText(_ string, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
