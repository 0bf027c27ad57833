package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// MessageType is the "type" of a checkpoint's webhook body.
const MessageType = "checkpoint.signed"

// Webhook POSTs each checkpoint, in the file format with "type":
// "checkpoint.signed" added, to a subscription's URL, signed the Standard
// Webhooks way with each of its active secrets (adapters/webhook). The
// webhook-id is "checkpoint-<position>", the same on every attempt, so a
// receiver sent one checkpoint twice can tell.
type Webhook struct {
	sub     domain.Subscription
	cfg     WebhookConfig
	backoff time.Duration // before the first retry; doubled before each next
	now     func() time.Time
}

// WebhookConfig is how a Webhook sends: what cmd/activityd wires from
// adapters/webhook, so that deliveries and checkpoints share one SSRF guard
// and one signature (no adapter imports another).
type WebhookConfig struct {
	// Client sends the requests (adapters/webhook.Guard's client: private
	// and loopback addresses refused unless allowed). Required.
	Client *http.Client
	// Sign sets the Standard Webhooks headers (adapters/webhook.SetHeaders).
	// Required.
	Sign func(h http.Header, secrets []string, id string, ts time.Time, body []byte) error
	// Final reports whether a request error must not be tried again (an
	// address the guard refuses); nil: every network error is retried.
	Final func(error) bool
}

var _ ports.CheckpointSink = (*Webhook)(nil)

// Retries is how many times Webhook.Put tries again after a network error
// or a 5xx or 429 answer before it gives up.
const Retries = 3

// NewWebhook returns a Webhook posting to sub.URL, signed with sub's
// secrets, as cfg says.
func NewWebhook(sub domain.Subscription, cfg WebhookConfig) (*Webhook, error) {
	if cfg.Client == nil || cfg.Sign == nil {
		return nil, errors.New("checkpoint webhook: a client and a signer are required")
	}
	if sub.ID == "" {
		return nil, errors.New("checkpoint webhook: the subscription has no id")
	}
	u, err := url.Parse(sub.URL)
	if err != nil {
		return nil, fmt.Errorf("checkpoint webhook %s: %w", sub.ID, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("checkpoint webhook %s: URL %q is not an absolute http(s) URL", sub.ID, sub.URL)
	}
	if len(sub.Secrets) == 0 {
		return nil, fmt.Errorf("checkpoint webhook %s: no secret to sign with", sub.ID)
	}
	return &Webhook{sub: sub, cfg: cfg, backoff: 500 * time.Millisecond, now: time.Now}, nil
}

// Name is "webhook:" and the subscription's id.
func (w *Webhook) Name() string { return "webhook:" + w.sub.ID }

// Put POSTs c with its leaves. A network error or a 5xx or 429 answer is
// tried again Retries times, after half a second, then one, then two; any
// other answer outside 2xx fails at once, as does an address the guard
// refuses.
func (w *Webhook) Put(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	body, err := encode(MessageType, c, leaves)
	if err != nil {
		return err
	}
	id := "checkpoint-" + strconv.FormatInt(c.Position, 10)
	wait := w.backoff
	for attempt := 1; ; attempt++ {
		again, err := w.post(ctx, id, body)
		if err == nil {
			return nil
		}
		if attempt > Retries || !again || ctx.Err() != nil {
			return fmt.Errorf("checkpoint %d to %s (attempt %d): %w", c.Position, w.Name(), attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("checkpoint %d to %s (attempt %d): %w; giving up: %w", c.Position, w.Name(), attempt, err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// post makes one attempt, signed now; again reports whether a failed
// attempt may succeed if tried again: after a network error (other than
// an address the guard refuses) or a 5xx or 429 answer.
func (w *Webhook) post(ctx context.Context, id string, body []byte) (again bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.sub.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "activityd")
	now := w.now()
	if err := w.cfg.Sign(req.Header, w.sub.ActiveSecrets(now), id, now, body); err != nil {
		return false, fmt.Errorf("signing: %w", err)
	}
	res, err := w.cfg.Client.Do(req)
	if err != nil {
		return w.cfg.Final == nil || !w.cfg.Final(err), fmt.Errorf("webhook POST: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // reuse the connection
	if res.StatusCode < 200 || res.StatusCode > 299 {
		again := res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests
		return again, fmt.Errorf("webhook POST: the receiver answered %s", res.Status)
	}
	return false, nil
}
