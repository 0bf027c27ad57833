package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/activityd/activityd/adapters/checkpoint"
	"github.com/activityd/activityd/adapters/telemetry"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// checkpointKey is CHECKPOINT_KEY, or the key in CHECKPOINT_KEY_FILE,
// made there on first start (created: it was).
func checkpointKey(cfg config) (key ed25519.PrivateKey, created bool, err error) {
	if cfg.CheckpointKey != "" {
		k, err := checkpoint.ParseKey(cfg.CheckpointKey)
		if err != nil {
			return nil, false, fmt.Errorf("CHECKPOINT_KEY: %w", err)
		}
		return k, false, nil
	}
	k, created, err := checkpoint.LoadOrCreateKey(cfg.CheckpointKeyFile)
	if err != nil {
		return nil, false, fmt.Errorf("CHECKPOINT_KEY_FILE %s: %w", cfg.CheckpointKeyFile, err)
	}
	return k, created, nil
}

// checkpointSinks opens CHECKPOINT_SINKS: dir:PATH, stdout and
// webhook:SUBSCRIPTION_ID (a subscription of this store, signed with its
// secrets, through the webhooks' SSRF guard).
func (p *process) checkpointSinks(ctx context.Context) ([]ports.CheckpointSink, error) {
	var out []ports.CheckpointSink
	for _, s := range p.cfg.CheckpointSinks {
		kind, arg, _ := strings.Cut(s, ":")
		switch kind {
		case "dir":
			d, err := checkpoint.NewDir(arg)
			if err != nil {
				return nil, fmt.Errorf("CHECKPOINT_SINKS %s: %w", s, err)
			}
			out = append(out, d)
		case "stdout":
			out = append(out, checkpoint.Stdout())
		case "webhook":
			sub, err := p.store.Subscription(ctx, arg)
			if err != nil {
				return nil, fmt.Errorf("CHECKPOINT_SINKS %s: the webhook subscription: %w", s, err)
			}
			guard, err := webhook.NewGuard(p.cfg.WebhookAllow) // checked by loadConfig
			if err != nil {
				return nil, fmt.Errorf("WEBHOOK_ALLOW: %w", err)
			}
			// The same rules as the subscription's deliveries: https
			// unless WEBHOOK_ALLOW_HTTP, no private target unless allowed.
			if err := guard.CheckURL(sub.URL, p.cfg.WebhookAllowHTTP); err != nil {
				return nil, fmt.Errorf("CHECKPOINT_SINKS %s: %w", s, err)
			}
			w, err := checkpoint.NewWebhook(sub, checkpoint.WebhookConfig{
				Client: guard.Client(p.cfg.WebhookTimeout),
				Sign:   webhook.SetHeaders,
				Final:  func(err error) bool { return errors.Is(err, webhook.ErrRefusedAddress) },
			})
			if err != nil {
				return nil, fmt.Errorf("CHECKPOINT_SINKS %s: %w", s, err)
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// newEvidence builds the evidence use cases: the checkpoint key (made and
// its public key logged on first start) and the sinks.
func (p *process) newEvidence(ctx context.Context) (*app.Evidence, error) {
	key, created, err := checkpointKey(p.cfg)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	if created {
		p.log.Warn("checkpoint key created: keep a copy of its public key outside this host, and give every replica the same key",
			"file", p.cfg.CheckpointKeyFile, "key_id", domain.CheckpointKeyID(pub),
			"public_key", strings.TrimSpace(string(checkpoint.PublicKeyPEM(pub))))
	}
	sinks, err := p.checkpointSinks(ctx)
	if err != nil {
		return nil, err
	}
	return app.NewEvidence(p.store, app.EvidenceConfig{Key: key, Sinks: sinks, Clock: ports.SystemClock, Logger: p.log}), nil
}

// startCheckpoints signs a checkpoint at every tick of
// CHECKPOINT_SCHEDULE until close. Replicas doing so at once sign the same
// heads, at most once per position.
func (p *process) startCheckpoints(ctx context.Context, ev *app.Evidence) error {
	unobserve, err := telemetry.ObserveCheckpointAge(p.tel.MeterProvider(), func(ctx context.Context) (time.Time, bool, error) {
		cs, err := ev.Checkpoints(ctx, 0, 1)
		if err != nil || len(cs) == 0 {
			return time.Time{}, false, err
		}
		return cs[0].At, true, nil
	})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	p.onClose(func() { _ = unobserve() })
	sched := p.cfg.CheckpointScheduleParsed
	if sched == nil {
		p.log.Info("checkpoints only on demand (CHECKPOINT_SCHEDULE=off)")
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			now := time.Now()
			t := time.NewTimer(sched.Next(now.UTC()).Sub(now))
			select {
			case <-runCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if _, err := ev.Checkpoint(runCtx); err != nil && runCtx.Err() == nil {
				p.log.Error("scheduled checkpoint failed", "err", err)
			}
		}
	}()
	p.onClose(func() { stop(); <-done }) // before the store closes
	p.log.Info("checkpoints scheduled", "schedule", p.cfg.CheckpointSchedule, "sinks", listValue(p.cfg.CheckpointSinks),
		"key_id", domain.CheckpointKeyID(ev.PublicKey()))
	return nil
}

// parseCheckpointSinks reads CHECKPOINT_SINKS' list.
func parseCheckpointSinks(v string) ([]string, error) {
	if v == "none" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		kind, arg, hasArg := strings.Cut(s, ":")
		switch {
		case s == "":
			continue
		case kind == "stdout" && !hasArg:
		case (kind == "dir" || kind == "webhook") && arg != "":
		default:
			return nil, errors.New("must be a comma-separated list of dir:PATH, stdout and webhook:SUBSCRIPTION_ID, or none; " + fmt.Sprintf("%q is none of them", s))
		}
		out = append(out, s)
	}
	return out, nil
}
