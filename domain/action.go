package domain

import (
	"fmt"
	"slices"
	"strings"
)

// Action names what a user did: lower case, matching
// ^[a-z][a-z0-9_.:-]{0,63}$, and in the configured vocabulary.
type Action string

// DefaultActions is the vocabulary of both predecessor systems.
var DefaultActions = []Action{"login", "logout", "upload_file", "created", "updated", "deleted", "viewed"}

// Vocabulary is the set of accepted actions. The zero value accepts any
// well-formed action (ACTIONS=*).
type Vocabulary struct {
	set map[Action]struct{}
}

// AnyAction accepts every well-formed action.
func AnyAction() Vocabulary { return Vocabulary{} }

// NewVocabulary accepts exactly the given actions, normalised. It fails if
// one of them is not well-formed.
func NewVocabulary(actions ...string) (Vocabulary, error) {
	v := Vocabulary{set: make(map[Action]struct{}, len(actions))}
	for _, a := range actions {
		n := Action(asciiLower(strings.TrimSpace(a)))
		if !wellFormed(n) {
			return Vocabulary{}, fmt.Errorf("action %q: must match ^[a-z][a-z0-9_.:-]{0,63}$", a)
		}
		v.set[n] = struct{}{}
	}
	if len(v.set) == 0 {
		return Vocabulary{}, fmt.Errorf("empty vocabulary: name at least one action, or * for any")
	}
	return v, nil
}

// DefaultVocabulary is the vocabulary used when none is configured.
func DefaultVocabulary() Vocabulary {
	v := Vocabulary{set: make(map[Action]struct{}, len(DefaultActions))}
	for _, a := range DefaultActions {
		v.set[a] = struct{}{}
	}
	return v
}

// Any reports whether every well-formed action is accepted.
func (v Vocabulary) Any() bool { return v.set == nil }

// Actions lists the accepted actions, sorted; nil when any is accepted.
func (v Vocabulary) Actions() []Action {
	if v.set == nil {
		return nil
	}
	out := make([]Action, 0, len(v.set))
	for a := range v.set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// ParseAction normalises s to lower case and checks it is well-formed and in
// the vocabulary. field names the input field in the error.
func (v Vocabulary) ParseAction(field, s string) (Action, error) {
	a := Action(asciiLower(s))
	if a == "" {
		return "", Invalid(field, CodeRequired, "is required")
	}
	if !wellFormed(a) {
		return "", Invalid(field, CodeMalformed, "must start with a letter and contain only a-z, 0-9, '_', '.', ':' or '-' (at most 64 characters)")
	}
	if v.set != nil {
		if _, ok := v.set[a]; !ok {
			return "", Invalid(field, CodeUnknownAction, "unknown action %q; accepted: %s", string(a), joinActions(v.Actions()))
		}
	}
	return a, nil
}

func joinActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// wellFormed checks ^[a-z][a-z0-9_.:-]{0,63}$ without a regexp.
func wellFormed(a Action) bool {
	if len(a) == 0 || len(a) > 64 || a[0] < 'a' || a[0] > 'z' {
		return false
	}
	for i := 1; i < len(a); i++ {
		c := a[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// asciiLower lowers A-Z only. Unicode case folding would turn the Kelvin
// sign (U+212A) into "k" and accept it; here it stays and is rejected.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
