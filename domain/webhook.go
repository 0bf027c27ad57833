package domain

import (
	"slices"
	"time"
)

// Subscription is a webhook endpoint that receives the change feed's
// changes its filter selects, in feed order, signed the Standard Webhooks
// way with each of its secrets.
type Subscription struct {
	ID  string // "wh_" and 26 base32 characters
	URL string
	// Filter selects the changes delivered; empty lists select everything.
	Filter    SubscriptionFilter
	Secrets   []WebhookSecret // newest first; each signs every delivery
	CreatedAt time.Time
	CreatedBy string
	// Version grows with every stored change of the subscription: updates
	// are compare-and-set on it (ports.Webhooks).
	Version int64
	// State is the dispatcher's: what was delivered, and how it fares.
	State DeliveryState
}

// SubscriptionFilter selects changes by action, user and kind; an empty
// list selects every value.
type SubscriptionFilter struct {
	Actions []Action
	Users   []int64
	Kinds   []ChangeKind
}

// Match reports whether c passes f. An erasure passes the actions filter
// (it may concern events of any action, whose copies a receiver should
// forget).
func (f SubscriptionFilter) Match(c Change) bool {
	return (len(f.Actions) == 0 || c.Erasure != nil || slices.Contains(f.Actions, c.Event.Action)) &&
		(len(f.Users) == 0 || slices.Contains(f.Users, c.UserID())) &&
		(len(f.Kinds) == 0 || slices.Contains(f.Kinds, c.Kind))
}

// WebhookSecret is a signing secret: "whsec_" and the base64 of its bytes.
// A rotated-out secret keeps signing until ExpiresAt, so receivers can
// switch without dropping a delivery.
type WebhookSecret struct {
	Secret    string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// DeliveryState is where a subscription's deliveries stand.
type DeliveryState struct {
	// Position: every change up to it was delivered (or did not match).
	Position int64
	// Pending: the last position of the delivery being retried (0: none),
	// so that a retry sends the same changes under the same webhook-id.
	Pending   int64
	Failures  int       // failed attempts in a row
	Paused    bool      // after too many failures, or by an admin
	LastError string    // of the last failed attempt
	NextTry   time.Time // a retry is not due before it (zero: now)
}

// Delivery is one attempt to deliver changes to a subscription.
type Delivery struct {
	Subscription string
	MessageID    string // the webhook-id header: the same on every retry
	First, Last  int64  // the positions delivered
	Count        int    // changes in it
	Attempt      int    // 1 for the first try
	At           time.Time
	Duration     time.Duration
	StatusCode   int    // the receiver's answer, 0 when none came
	Error        string // empty when delivered
}

// OK reports whether the attempt delivered its changes.
func (d Delivery) OK() bool { return d.Error == "" }

// ActiveSecrets returns the secrets that sign at now: the newest, and
// rotated-out ones not yet expired.
func (s Subscription) ActiveSecrets(now time.Time) []string {
	var out []string
	for _, sec := range s.Secrets {
		if sec.ExpiresAt.IsZero() || sec.ExpiresAt.After(now) {
			out = append(out, sec.Secret)
		}
	}
	return out
}
