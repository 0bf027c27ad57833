package app

import (
	"slices"
	"time"

	"github.com/activityd/activityd/domain"
)

// Identity is what a principal may learn about itself (GET /v1/me): who
// it acts as, with which rights, until when. It holds nothing that is not
// the principal's own, so every authenticated principal may read it.
type Identity struct {
	Name      string // as in status history: "token:3f9a…", "jwt:42"
	UserID    int64  // 0: bound to no user
	Scopes    []domain.Scope
	Admin     bool // may act on every user
	AnyUser   bool // may act on any one user it names (the migration setting)
	ExpiresAt time.Time
	Kind      domain.CredentialKind
}

// Me describes p to itself. It takes no scope: a credential that may do
// nothing still learns that it may do nothing.
func Me(p domain.Principal) Identity {
	scopes := slices.Clone(p.Scopes)
	if scopes == nil {
		scopes = []domain.Scope{}
	}
	return Identity{
		Name:      p.Name,
		UserID:    p.UserID,
		Scopes:    scopes,
		Admin:     p.IsAdmin(),
		AnyUser:   p.AnyUser,
		ExpiresAt: p.ExpiresAt,
		Kind:      p.CredentialKind(),
	}
}

// Actions returns the configured vocabulary (ACTIONS) to a principal that
// may read events: the actions an event may name, sorted, or any
// well-formed action when the vocabulary accepts any (Vocabulary.Any, and
// no list).
func (s *Events) Actions(p domain.Principal) (domain.Vocabulary, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return domain.Vocabulary{}, err
	}
	return s.limits.Actions, nil
}
