package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// MessageType is the type of every message activityd sends: changes of
// the feed.
const MessageType = "activity.changes"

// Sender is the ports.WebhookSender over HTTP: a JSON message in the
// Standard Webhooks shape ({"type","timestamp","data"}), signed with every
// active secret of the subscription, POSTed through the SSRF guard's client.
type Sender struct {
	client *http.Client
	encode func([]byte, domain.Change) []byte
	agent  string
}

var _ ports.WebhookSender = (*Sender)(nil)

// NewSender returns a Sender posting with client (Guard.Client), each
// change rendered by encode (the /v1 feed's rendering), as agent
// (User-Agent).
func NewSender(client *http.Client, encode func([]byte, domain.Change) []byte, agent string) *Sender {
	return &Sender{client: client, encode: encode, agent: agent}
}

// Body renders m for subscription id: {"type":"activity.changes",
// "timestamp":…, "data":{"subscription":…, "changes":[…]}}.
func (s *Sender) Body(id string, m ports.WebhookMessage) []byte {
	b := make([]byte, 0, 256+len(m.Changes)*512)
	b = append(b, `{"type":"`+MessageType+`","timestamp":"`...)
	b = m.At.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":{"subscription":`...)
	b = strconv.AppendQuote(b, id) // ids are "wh_" and base32: nothing to escape
	b = append(b, `,"changes":[`...)
	for i, c := range m.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.encode(b, c)
	}
	return append(b, "]}}"...)
}

// Send implements ports.WebhookSender.
func (s *Sender) Send(ctx context.Context, sub domain.Subscription, m ports.WebhookMessage) (int, error) {
	body := s.Body(sub.ID, m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.agent)
	if err := SetHeaders(req.Header, sub.ActiveSecrets(m.At), m.ID, m.At, body); err != nil {
		return 0, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook POST: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // reuse the connection
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, fmt.Errorf("webhook POST: the receiver answered %s", res.Status)
	}
	return res.StatusCode, nil
}
