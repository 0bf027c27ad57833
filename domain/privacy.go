package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PrivacyAction is what a privacy rule does to a metadata value.
type PrivacyAction string

// The privacy actions.
const (
	// PrivacyDrop removes the key.
	PrivacyDrop PrivacyAction = "drop"
	// PrivacyMaskIP truncates an IP address to its network: an IPv4
	// address to its /24 ("203.0.113.0"), an IPv6 one to its /48
	// ("2001:db8:1::"). A value that is no IP address is dropped.
	PrivacyMaskIP PrivacyAction = "mask-ip"
	// PrivacyHash replaces the value by a keyed hash, "hmac-sha256:" and 64
	// hex digits of HMAC-SHA256(key, the value's JSON): equal values still
	// compare equal (and can be looked up by whoever holds the key), but the
	// value cannot be read back.
	PrivacyHash PrivacyAction = "hash"
)

// PrivacyRule applies Action to the metadata member at Path: a key, or
// keys joined by dots into nested objects ("client.ip").
type PrivacyRule struct {
	Path   string
	Action PrivacyAction
}

// Privacy is the rules applied to metadata before anything is stored.
// The zero value has no rule.
type Privacy struct {
	Rules []PrivacyRule
	key   []byte // for PrivacyHash
}

// ParsePrivacy reads rules written "path:action,path:action" (e.g.
// "password:drop,ip:mask-ip,email:hash"); key is the secret of the hash
// rules, required when there is one.
func ParsePrivacy(spec string, key []byte) (Privacy, error) {
	p := Privacy{key: key}
	for _, part := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' }) {
		path, action, ok := strings.Cut(part, ":")
		a := PrivacyAction(action)
		switch {
		case !ok || path == "" || strings.Contains(path, "..") || strings.HasPrefix(path, ".") || strings.HasSuffix(path, "."):
			return Privacy{}, fmt.Errorf("rule %q: want path:action, the path a key or dotted keys", part)
		case a != PrivacyDrop && a != PrivacyMaskIP && a != PrivacyHash:
			return Privacy{}, fmt.Errorf("rule %q: the action must be drop, mask-ip or hash", part)
		case a == PrivacyHash && len(key) < 16:
			return Privacy{}, fmt.Errorf("rule %q: hash needs a key of at least 16 bytes", part)
		case slices.ContainsFunc(p.Rules, func(r PrivacyRule) bool { return r.Path == path }):
			return Privacy{}, fmt.Errorf("rule %q: %s has a rule already", part, path)
		}
		p.Rules = append(p.Rules, PrivacyRule{Path: path, Action: a})
	}
	return p, nil
}

// String lists the rules as ParsePrivacy reads them ("" for none).
func (p Privacy) String() string {
	parts := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		parts[i] = r.Path + ":" + string(r.Action)
	}
	return strings.Join(parts, ",")
}

// Apply returns canonical metadata md with the rules applied, canonical
// again; md itself when no rule matches anything.
func (p Privacy) Apply(md json.RawMessage) (json.RawMessage, error) {
	if len(p.Rules) == 0 {
		return md, nil
	}
	v, err := decodeJSON(md)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, metadataError{CodeNotObject, "must be a JSON object"}
	}
	changed := false
	for _, r := range p.Rules {
		if p.apply(obj, strings.Split(r.Path, "."), r.Action) {
			changed = true
		}
	}
	if !changed {
		return md, nil
	}
	return json.Marshal(obj)
}

// apply applies a to the member at path of obj and reports whether it
// changed anything.
func (p Privacy) apply(obj map[string]any, path []string, a PrivacyAction) bool {
	v, ok := obj[path[0]]
	if !ok {
		return false
	}
	if len(path) > 1 {
		inner, ok := v.(map[string]any)
		return ok && p.apply(inner, path[1:], a)
	}
	switch a {
	case PrivacyDrop:
		delete(obj, path[0])
	case PrivacyMaskIP:
		s, _ := v.(string)
		masked, ok := maskIP(s)
		if !ok {
			delete(obj, path[0]) // not an address: nothing safe to keep
			return true
		}
		obj[path[0]] = masked
	case PrivacyHash:
		b, _ := json.Marshal(v)
		m := hmac.New(sha256.New, p.key)
		m.Write(b)
		obj[path[0]] = "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
	}
	return true
}

// maskIP truncates an address to its /24 (IPv4, IPv4-mapped included) or
// /48 (IPv6); a zone is dropped.
func maskIP(s string) (string, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	a = a.WithZone("").Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return "", false
	}
	return pfx.Addr().String(), true
}
