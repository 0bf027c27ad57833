package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Webhook defaults, for the zero fields of WebhooksConfig.
const (
	DefaultWebhookBatch       = 100
	DefaultWebhookMaxFailures = 10
	DefaultWebhookGrace       = 24 * time.Hour
	DefaultWebhookMaxBackoff  = time.Hour
	DefaultWebhookLinger      = 50 * time.Millisecond
)

// WebhooksConfig configures the webhook use cases.
type WebhooksConfig struct {
	// Sender delivers messages (signed, over the network).
	Sender ports.WebhookSender
	// CheckURL refuses a target the server must not call (private
	// addresses unless allowed, http unless allowed): server-side request
	// forgery. nil: every absolute URL.
	CheckURL func(raw string) error
	// NewSecret makes a signing secret ("whsec_…").
	NewSecret func() (string, error)
	Clock     ports.Clock
	// Batch is how many changes one delivery carries at most.
	Batch int
	// MaxFailures failed attempts in a row pause a subscription.
	MaxFailures int
	// Backoff is the wait after the n-th failure in a row (n >= 1):
	// exponential from a second, at most DefaultWebhookMaxBackoff, when nil.
	Backoff func(n int) time.Duration
	// Grace is how long a rotated-out secret keeps signing.
	Grace time.Duration
	// Poll is how often the dispatcher looks for changes and subscriptions
	// other processes made (0: DefaultFeedPoll).
	Poll time.Duration
	// Linger is how long a delivery loop woken by a new change waits for
	// more before it delivers, so that a busy feed goes out in batches
	// rather than a request (and a log entry) per write. 0:
	// DefaultWebhookLinger; negative: none.
	Linger time.Duration
	Logger *slog.Logger
}

// Webhooks is the webhook use cases: admins manage subscriptions, and the
// dispatcher (Run) delivers the change feed to each, in feed order, at
// least once.
type Webhooks struct {
	store ports.Webhooks
	feed  ports.Changes
	wake  func() <-chan struct{} // closed when this process stored a change; nil: none
	cfg   WebhooksConfig
	log   *slog.Logger
}

// NewWebhooks returns the webhook use cases over store, delivering the
// changes of feed. wake, when not nil, is Feed.Changed: a closed channel
// wakes the dispatcher as soon as this process stores a change.
func NewWebhooks(store ports.Webhooks, feed ports.Changes, wake func() <-chan struct{}, cfg WebhooksConfig) *Webhooks {
	if cfg.Clock == nil {
		cfg.Clock = ports.SystemClock
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultWebhookBatch
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultWebhookMaxFailures
	}
	if cfg.Backoff == nil {
		cfg.Backoff = ExponentialBackoff(time.Second, DefaultWebhookMaxBackoff)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultWebhookGrace
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultFeedPoll
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultWebhookLinger
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhooks{store: store, feed: feed, wake: wake, cfg: cfg, log: log}
}

// ExponentialBackoff waits first after the first failure, doubling with
// each failure in a row, never more than most.
func ExponentialBackoff(first, most time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		d := first
		for i := 1; i < n && d < most; i++ {
			d *= 2
		}
		return min(d, most)
	}
}

// WebhookInput is a subscription as an admin sends it; nil fields of an
// update are left as they are.
type WebhookInput struct {
	URL     *string
	Actions *[]string
	Users   *[]int64
	Kinds   *[]string
	// From, at creation: "now" (the default: changes made from now on),
	// or a position to deliver after ("0": the whole feed).
	From   string
	Paused *bool
}

func admin(p domain.Principal, what string) error {
	if !p.IsAdmin() {
		return fmt.Errorf("%w: only an admin may %s", domain.ErrForbidden, what)
	}
	return nil
}

// filter validates in's filter fields over f.
func (w *Webhooks) apply(s *domain.Subscription, in WebhookInput, ve *domain.ValidationError) {
	if in.URL != nil {
		u := strings.TrimSpace(*in.URL)
		switch {
		case u == "":
			ve.Add("url", domain.CodeRequired, "is required: the endpoint to deliver to")
		case w.cfg.CheckURL != nil:
			if err := w.cfg.CheckURL(u); err != nil {
				ve.Add("url", domain.CodeNotOneOf, "%s", err.Error())
			}
		}
		s.URL = u
	}
	if in.Actions != nil {
		s.Filter.Actions = nil
		for i, a := range *in.Actions {
			act, err := domain.AnyAction().ParseAction("actions["+strconv.Itoa(i)+"]", a)
			if err != nil {
				ve.Merge(err)
				continue
			}
			s.Filter.Actions = append(s.Filter.Actions, act)
		}
	}
	if in.Users != nil {
		s.Filter.Users = nil
		for i, u := range *in.Users {
			if u < 1 {
				ve.Add("user_ids["+strconv.Itoa(i)+"]", domain.CodeOutOfRange, "must be a positive integer")
			}
			s.Filter.Users = append(s.Filter.Users, u)
		}
	}
	if in.Kinds != nil {
		s.Filter.Kinds = nil
		for i, k := range *in.Kinds {
			if !domain.ChangeKind(k).Valid() {
				ve.Add("kinds["+strconv.Itoa(i)+"]", domain.CodeNotOneOf, "must be one of %v", domain.ChangeKinds)
				continue
			}
			s.Filter.Kinds = append(s.Filter.Kinds, domain.ChangeKind(k))
		}
	}
	if in.Paused != nil {
		s.State.Paused = *in.Paused
		if !s.State.Paused {
			s.State.Failures, s.State.NextTry = 0, time.Time{}
		}
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newSubscriptionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "wh_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// Create stores a new subscription for admin p and returns it with its
// secret, which is never shown again.
func (w *Webhooks) Create(ctx context.Context, p domain.Principal, in WebhookInput) (domain.Subscription, string, error) {
	if err := admin(p, "manage webhooks"); err != nil {
		return domain.Subscription{}, "", err
	}
	now := domain.Normalize(w.cfg.Clock.Now())
	s := domain.Subscription{ID: newSubscriptionID(), CreatedAt: now, CreatedBy: p.Name}
	ve := &domain.ValidationError{}
	if in.URL == nil {
		in.URL = new(string)
	}
	w.apply(&s, in, ve)
	from := strings.TrimSpace(in.From)
	switch from {
	case "", "now":
	default:
		n, err := strconv.ParseInt(from, 10, 64)
		if err != nil || n < 0 {
			ve.Add("from", domain.CodeMalformed, `must be "now" or a position (an integer >= 0)`)
		}
		s.State.Position = n
	}
	if err := ve.OrNil(); err != nil {
		return domain.Subscription{}, "", err
	}
	if from == "" || from == "now" {
		head, err := w.feed.FeedHead(ctx)
		if err != nil {
			return domain.Subscription{}, "", fmt.Errorf("create webhook: %w", err)
		}
		s.State.Position = head
	}
	secret, err := w.cfg.NewSecret()
	if err != nil {
		return domain.Subscription{}, "", fmt.Errorf("create webhook: %w", err)
	}
	s.Secrets = []domain.WebhookSecret{{Secret: secret, CreatedAt: now}}
	if err := w.store.CreateSubscription(ctx, s); err != nil {
		return domain.Subscription{}, "", fmt.Errorf("create webhook: %w", err)
	}
	s.Version = 1
	return s, secret, nil
}

// List returns every subscription.
func (w *Webhooks) List(ctx context.Context, p domain.Principal) ([]domain.Subscription, error) {
	if err := admin(p, "manage webhooks"); err != nil {
		return nil, err
	}
	out, err := w.store.Subscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// Get returns one subscription.
func (w *Webhooks) Get(ctx context.Context, p domain.Principal, id string) (domain.Subscription, error) {
	if !validSubscriptionID(id) {
		return domain.Subscription{}, fmt.Errorf("%w: webhook %q", domain.ErrNotFound, id)
	}
	if err := admin(p, "manage webhooks"); err != nil {
		return domain.Subscription{}, err
	}
	s, err := w.store.Subscription(ctx, id)
	if err != nil {
		return domain.Subscription{}, fmt.Errorf("webhook %s: %w", id, err)
	}
	return s, nil
}

// modify applies fn to subscription id, retrying when the dispatcher
// changed it meanwhile (compare-and-set on Version).
func (w *Webhooks) modify(ctx context.Context, id string, fn func(*domain.Subscription) error) (domain.Subscription, error) {
	if !validSubscriptionID(id) {
		return domain.Subscription{}, fmt.Errorf("%w: webhook %q", domain.ErrNotFound, id)
	}
	for {
		s, err := w.store.Subscription(ctx, id)
		if err != nil {
			return domain.Subscription{}, fmt.Errorf("webhook %s: %w", id, err)
		}
		if err := fn(&s); err != nil {
			return domain.Subscription{}, err
		}
		err = w.store.UpdateSubscription(ctx, s)
		if errors.Is(err, domain.ErrConflict) {
			continue
		}
		if err != nil {
			return domain.Subscription{}, fmt.Errorf("webhook %s: %w", id, err)
		}
		s.Version++
		return s, nil
	}
}

// Update changes a subscription's target, filter or pause; resuming clears
// its failures, so delivery is tried at once.
func (w *Webhooks) Update(ctx context.Context, p domain.Principal, id string, in WebhookInput) (domain.Subscription, error) {
	if err := admin(p, "manage webhooks"); err != nil {
		return domain.Subscription{}, err
	}
	if in.From != "" {
		return domain.Subscription{}, domain.Invalid("from", domain.CodeConflict, "is taken at creation only; replay to move a subscription")
	}
	return w.modify(ctx, id, func(s *domain.Subscription) error {
		ve := &domain.ValidationError{}
		w.apply(s, in, ve)
		return ve.OrNil()
	})
}

// Delete removes a subscription and its delivery log.
func (w *Webhooks) Delete(ctx context.Context, p domain.Principal, id string) error {
	if !validSubscriptionID(id) {
		return fmt.Errorf("%w: webhook %q", domain.ErrNotFound, id)
	}
	if err := admin(p, "manage webhooks"); err != nil {
		return err
	}
	if err := w.store.DeleteSubscription(ctx, id); err != nil {
		return fmt.Errorf("webhook %s: %w", id, err)
	}
	return nil
}

// Rotate gives a subscription a new secret, returned once; the previous
// ones keep signing for the grace period (cfg.Grace), so receivers can
// switch without refusing a delivery. Expired secrets are dropped.
func (w *Webhooks) Rotate(ctx context.Context, p domain.Principal, id string) (domain.Subscription, string, error) {
	if err := admin(p, "manage webhooks"); err != nil {
		return domain.Subscription{}, "", err
	}
	secret, err := w.cfg.NewSecret()
	if err != nil {
		return domain.Subscription{}, "", fmt.Errorf("rotate webhook secret: %w", err)
	}
	now := domain.Normalize(w.cfg.Clock.Now())
	s, err := w.modify(ctx, id, func(s *domain.Subscription) error {
		kept := []domain.WebhookSecret{{Secret: secret, CreatedAt: now}}
		for _, old := range s.Secrets {
			if !old.ExpiresAt.IsZero() && !old.ExpiresAt.After(now) {
				continue
			}
			if old.ExpiresAt.IsZero() || old.ExpiresAt.After(now.Add(w.cfg.Grace)) {
				old.ExpiresAt = now.Add(w.cfg.Grace)
			}
			kept = append(kept, old)
		}
		s.Secrets = kept
		return nil
	})
	return s, secret, err
}

// Replay makes a subscription deliver again every change after position
// from (and resumes it).
func (w *Webhooks) Replay(ctx context.Context, p domain.Principal, id string, from int64) (domain.Subscription, error) {
	if err := admin(p, "manage webhooks"); err != nil {
		return domain.Subscription{}, err
	}
	if from < 0 {
		return domain.Subscription{}, domain.Invalid("from", domain.CodeOutOfRange, "must be a position: an integer >= 0")
	}
	return w.modify(ctx, id, func(s *domain.Subscription) error {
		s.State = domain.DeliveryState{Position: from}
		return nil
	})
}

// Deliveries returns a subscription's latest attempts, newest first.
func (w *Webhooks) Deliveries(ctx context.Context, p domain.Principal, id string, limit int) ([]domain.Delivery, error) {
	if !validSubscriptionID(id) {
		return nil, fmt.Errorf("%w: webhook %q", domain.ErrNotFound, id)
	}
	if err := admin(p, "manage webhooks"); err != nil {
		return nil, err
	}
	if _, err := w.store.Subscription(ctx, id); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	out, err := w.store.Deliveries(ctx, id, limit)
	if err != nil {
		return nil, fmt.Errorf("webhook %s deliveries: %w", id, err)
	}
	return out, nil
}

var _ ports.WebhookJob = (*Webhooks)(nil)

// Active implements ports.WebhookJob.
func (w *Webhooks) Active(ctx context.Context) ([]string, error) {
	subs, err := w.store.Subscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	var ids []string
	for _, s := range subs {
		if !s.State.Paused {
			ids = append(ids, s.ID)
		}
	}
	return ids, nil
}

// Deliver implements ports.WebhookJob: one step of subscription id's delivery: the next batch of
// its changes (or the pending one, again, after a failure), delivered and
// recorded, its position moved on only after the receiver answered 2xx,
// so every change is delivered at least once and in feed order.
func (w *Webhooks) Deliver(ctx context.Context, id string) (ports.DeliveryStep, error) {
	if !validSubscriptionID(id) {
		return ports.DeliveryStep{}, fmt.Errorf("%w: webhook %q", domain.ErrNotFound, id)
	}
	s, err := w.store.Subscription(ctx, id)
	if err != nil {
		return ports.DeliveryStep{}, fmt.Errorf("webhook %s: %w", id, err)
	}
	st := s.State
	now := w.cfg.Clock.Now()
	if st.Paused {
		return ports.DeliveryStep{Paused: true, Idle: true}, nil
	}
	if now.Before(st.NextTry) {
		return ports.DeliveryStep{Failed: true, RetryAt: st.NextTry}, nil
	}
	until := st.Pending
	limit := w.cfg.Batch
	var matched []domain.Change
	last := st.Position
	for until == 0 || last < until {
		cs, err := w.feed.Changes(ctx, domain.ChangeFilter{After: last, Limit: limit})
		if err != nil {
			return ports.DeliveryStep{}, fmt.Errorf("webhook %s: %w", id, err)
		}
		for _, c := range cs {
			if until != 0 && c.Position > until {
				break
			}
			last = c.Position
			if s.Filter.Match(c) {
				matched = append(matched, c)
			}
		}
		if len(cs) < limit || (until != 0 && last >= until) {
			break
		}
		if until != 0 {
			continue // a retry resends everything up to until, whatever the batch size is now
		}
		if len(matched) > 0 {
			break
		}
		// A full page matched nothing: pass over it and read on.
		if err := w.setState(ctx, s, domain.DeliveryState{Position: last}); err != nil {
			return ports.DeliveryStep{}, err
		}
		return ports.DeliveryStep{Skipped: true}, nil
	}
	if until != 0 {
		last = until
	}
	if last == st.Position {
		return ports.DeliveryStep{Idle: true}, nil
	}
	if len(matched) == 0 { // read changes, none for this subscription
		if err := w.setState(ctx, s, domain.DeliveryState{Position: last}); err != nil {
			return ports.DeliveryStep{}, err
		}
		return ports.DeliveryStep{Skipped: true}, nil
	}
	m := ports.WebhookMessage{ID: fmt.Sprintf("%s_%d_%d", s.ID, st.Position+1, last), At: now, Changes: matched}
	began := time.Now()
	code, sendErr := w.cfg.Sender.Send(ctx, s, m)
	d := domain.Delivery{Subscription: s.ID, MessageID: m.ID, First: matched[0].Position, Last: matched[len(matched)-1].Position,
		Count: len(matched), Attempt: st.Failures + 1, At: domain.Normalize(now), Duration: time.Since(began), StatusCode: code}
	next := domain.DeliveryState{Position: last}
	step := ports.DeliveryStep{Delivered: len(matched)}
	if sendErr != nil {
		d.Error = storable(sendErr.Error())
		next = st
		next.Pending = last
		next.Failures++
		next.LastError = d.Error
		next.NextTry = domain.Normalize(now.Add(w.cfg.Backoff(next.Failures)))
		next.Paused = next.Failures >= w.cfg.MaxFailures
		step = ports.DeliveryStep{Failed: true, RetryAt: next.NextTry, Paused: next.Paused}
		if next.Paused {
			w.log.Warn("webhook paused after repeated failures", "subscription", s.ID, "failures", next.Failures, "err", sendErr)
		}
	}
	if err := w.store.RecordDelivery(ctx, d); err != nil && !errors.Is(err, domain.ErrNotFound) {
		w.log.Warn("webhook delivery log", "subscription", s.ID, "err", err)
	}
	if err := w.setState(ctx, s, next); err != nil {
		return ports.DeliveryStep{}, err
	}
	return step, nil
}

// setState stores next as s's delivery state. When s changed meanwhile
// but not its state (its secrets rotated, its filter edited), next still
// stands, and is stored over the new version; when its state changed
// (replayed, paused, resumed) or it is gone, the admin's word stands, and
// the next step starts from it (this delivery may be repeated).
func (w *Webhooks) setState(ctx context.Context, s domain.Subscription, next domain.DeliveryState) error {
	for {
		err := w.store.SetDeliveryState(ctx, s.ID, s.Version, next)
		if !errors.Is(err, domain.ErrConflict) {
			if err != nil {
				return fmt.Errorf("webhook %s: %w", s.ID, err)
			}
			return nil
		}
		now, rerr := w.store.Subscription(ctx, s.ID)
		if rerr != nil {
			return fmt.Errorf("webhook %s: %w", s.ID, rerr)
		}
		if !sameState(now.State, s.State) {
			return fmt.Errorf("webhook %s changed during delivery: %w", s.ID, err)
		}
		s.Version = now.Version
	}
}

func sameState(a, b domain.DeliveryState) bool {
	return a.Position == b.Position && a.Pending == b.Pending && a.Failures == b.Failures &&
		a.Paused == b.Paused && a.LastError == b.LastError && a.NextTry.Equal(b.NextTry)
}

// Run is the dispatcher: until ctx ends, it keeps one delivery loop per
// subscription (a slow receiver holds up its own deliveries only), waking
// them when this process stores a change, and every Poll for changes and
// subscriptions other processes made. Several replicas running it deliver
// the same changes more than once at worst (at least once); their state
// updates are compare-and-set.
func (w *Webhooks) Run(ctx context.Context) {
	var (
		mu      sync.Mutex
		running = map[string]context.CancelFunc{}
		wg      sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, cancel := range running {
			cancel()
		}
		mu.Unlock()
		wg.Wait()
	}()
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	for {
		ids, err := w.Active(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("webhooks: list subscriptions", "err", err)
		}
		mu.Lock()
		for _, id := range ids {
			if _, ok := running[id]; ok {
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			running[id] = cancel
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				w.loop(sctx, id)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
				cancel()
			}(id)
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loop delivers subscription id until it is paused, deleted, or ctx ends.
func (w *Webhooks) loop(ctx context.Context, id string) {
	for ctx.Err() == nil {
		var wake <-chan struct{}
		if w.wake != nil {
			wake = w.wake()
		}
		step, err := w.Deliver(ctx, id)
		var wait time.Duration
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return
		case errors.Is(err, domain.ErrConflict):
			continue
		case err != nil:
			if ctx.Err() == nil {
				w.log.Warn("webhook delivery", "subscription", id, "err", err)
			}
			wait = w.cfg.Poll
		case step.Paused:
			return
		case step.Failed:
			wait = time.Until(step.RetryAt)
			wake = nil // a new change does not make a failed receiver due
		case step.Idle:
			wait = w.cfg.Poll
		default:
			continue // delivered or skipped: on to the next batch
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		woken := false
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
			woken = true
		}
		t.Stop()
		if woken && w.cfg.Linger > 0 { // let the writes that follow join this delivery
			t := time.NewTimer(w.cfg.Linger)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// storable makes an error text safe to store and show: valid UTF-8
// without NUL (a receiver chooses its status line, and PostgreSQL refuses
// either), at most 500 bytes.
func storable(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "…"
	}
	return s
}

// validSubscriptionID reports whether id has the shape newSubscriptionID
// makes; any other id names no subscription (and never reaches a store,
// which may refuse its bytes).
func validSubscriptionID(id string) bool {
	if len(id) != 3+26 || !strings.HasPrefix(id, "wh_") {
		return false
	}
	for _, r := range id[3:] {
		if (r < 'a' || r > 'z') && (r < '2' || r > '7') {
			return false
		}
	}
	return true
}
