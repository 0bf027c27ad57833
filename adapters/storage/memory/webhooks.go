package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// webhooks is the store's ports.Webhooks. Its zero value is empty.
type webhooks struct {
	mu   sync.Mutex
	subs []*hook // in creation order
}

type hook struct {
	sub domain.Subscription
	log []domain.Delivery // oldest first, at most ports.KeptDeliveries
}

var _ ports.Webhooks = (*Store)(nil)

// errDuplicateSubscription is what a SQL store's primary key would say.
var errDuplicateSubscription = errors.New("memory: a webhook subscription with this id exists")

// cloneList copies l; empty lists are nil, as the SQL stores return them.
func cloneList[T any](l []T) []T {
	if len(l) == 0 {
		return nil
	}
	return slices.Clone(l)
}

func cloneSubscription(s domain.Subscription) domain.Subscription {
	s.Filter.Actions = cloneList(s.Filter.Actions)
	s.Filter.Users = cloneList(s.Filter.Users)
	s.Filter.Kinds = cloneList(s.Filter.Kinds)
	s.Secrets = cloneList(s.Secrets)
	return s
}

// find returns subscription id's record; the caller holds w.mu.
func (w *webhooks) find(id string) (int, *hook, error) {
	for i, h := range w.subs {
		if h.sub.ID == id {
			return i, h, nil
		}
	}
	return -1, nil, fmt.Errorf("%w: webhook subscription %s", domain.ErrNotFound, id)
}

// cas returns subscription id's record if its Version is still version;
// the caller holds w.mu.
func (w *webhooks) cas(id string, version int64) (*hook, error) {
	_, h, err := w.find(id)
	if err != nil {
		return nil, err
	}
	if h.sub.Version != version {
		return nil, fmt.Errorf("%w: webhook subscription %s is at version %d, not %d", domain.ErrConflict, id, h.sub.Version, version)
	}
	return h, nil
}

// CreateSubscription implements ports.Webhooks.
func (s *Store) CreateSubscription(ctx context.Context, sub domain.Subscription) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, _, err := w.find(sub.ID); err == nil {
		return errDuplicateSubscription
	}
	sub = cloneSubscription(sub)
	sub.Version = 1
	w.subs = append(w.subs, &hook{sub: sub})
	return nil
}

// Subscription implements ports.Webhooks.
func (s *Store) Subscription(ctx context.Context, id string) (domain.Subscription, error) {
	if err := s.check(ctx); err != nil {
		return domain.Subscription{}, err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	_, h, err := w.find(id)
	if err != nil {
		return domain.Subscription{}, err
	}
	return cloneSubscription(h.sub), nil
}

// Subscriptions implements ports.Webhooks: oldest first, ties in the order
// they were stored.
func (s *Store) Subscriptions(ctx context.Context) ([]domain.Subscription, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]domain.Subscription, len(w.subs))
	for i, h := range w.subs {
		out[i] = cloneSubscription(h.sub)
	}
	slices.SortStableFunc(out, func(a, b domain.Subscription) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// UpdateSubscription implements ports.Webhooks; CreatedAt and CreatedBy
// stay the creation's.
func (s *Store) UpdateSubscription(ctx context.Context, sub domain.Subscription) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.cas(sub.ID, sub.Version)
	if err != nil {
		return err
	}
	sub = cloneSubscription(sub)
	sub.CreatedAt, sub.CreatedBy, sub.Version = h.sub.CreatedAt, h.sub.CreatedBy, h.sub.Version+1
	h.sub = sub
	return nil
}

// SetDeliveryState implements ports.Webhooks.
func (s *Store) SetDeliveryState(ctx context.Context, id string, version int64, st domain.DeliveryState) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.cas(id, version)
	if err != nil {
		return err
	}
	h.sub.State, h.sub.Version = st, h.sub.Version+1
	return nil
}

// DeleteSubscription implements ports.Webhooks.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _, err := w.find(id)
	if err != nil {
		return err
	}
	w.subs = slices.Delete(w.subs, i, i+1)
	return nil
}

// RecordDelivery implements ports.Webhooks.
func (s *Store) RecordDelivery(ctx context.Context, d domain.Delivery) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	_, h, err := w.find(d.Subscription)
	if err != nil {
		return err
	}
	if len(h.log) == ports.KeptDeliveries {
		// Drop the oldest in place: the backing array never grows.
		copy(h.log, h.log[1:])
		h.log = h.log[:ports.KeptDeliveries-1]
	}
	h.log = append(h.log, d)
	return nil
}

// Deliveries implements ports.Webhooks; an unknown id has none.
func (s *Store) Deliveries(ctx context.Context, id string, limit int) ([]domain.Delivery, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	w := &s.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	_, h, _ := w.find(id) // an unknown id has no deliveries
	if h == nil || limit <= 0 {
		return []domain.Delivery{}, nil
	}
	n := min(limit, len(h.log))
	out := make([]domain.Delivery, n)
	for i := range n {
		out[i] = h.log[len(h.log)-1-i]
	}
	return out, nil
}
