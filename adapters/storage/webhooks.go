package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/activityd/activityd/domain"
)

// secretJSON is one element of a subscription's stored secrets: times as
// Unix microseconds, 0 (or absent) for the zero time.
type secretJSON struct {
	Secret    string `json:"secret"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// EncodeSecrets is the stored form of a subscription's secrets: a JSON
// array, newest first, the same in every SQL store.
func EncodeSecrets(secrets []domain.WebhookSecret) (string, error) {
	out := make([]secretJSON, len(secrets))
	for i, s := range secrets {
		out[i] = secretJSON{Secret: s.Secret, CreatedAt: micros(s.CreatedAt), ExpiresAt: micros(s.ExpiresAt)}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// DecodeSecrets reads EncodeSecrets' form; none is nil.
func DecodeSecrets(b []byte) ([]domain.WebhookSecret, error) {
	var in []secretJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("webhook secrets: %w", err)
	}
	var out []domain.WebhookSecret
	for _, s := range in {
		out = append(out, domain.WebhookSecret{Secret: s.Secret, CreatedAt: fromMicros(s.CreatedAt), ExpiresAt: fromMicros(s.ExpiresAt)})
	}
	return out, nil
}
