package domain_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

func TestPrivacyApply(t *testing.T) {
	key := []byte("0123456789abcdef-key")
	p, err := domain.ParsePrivacy("password:drop, ip:mask-ip,client.ip:mask-ip,email:hash,client.secret:drop", key)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "password:drop,ip:mask-ip,client.ip:mask-ip,email:hash,client.secret:drop" {
		t.Errorf("String = %q", p.String())
	}
	hashOf := func(v string) string {
		t.Helper()
		out, err := p.Apply(json.RawMessage(`{"email":` + v + `}`))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.Unmarshal(out, &m)
		return m["email"]
	}
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{}`},
		{`{"a":1}`, `{"a":1}`},
		{`{"password":"hunter2","a":1}`, `{"a":1}`},
		{`{"ip":"203.0.113.77"}`, `{"ip":"203.0.113.0"}`},
		{`{"ip":"2001:db8:1:2:3::4"}`, `{"ip":"2001:db8:1::"}`},
		{`{"ip":"::ffff:203.0.113.77"}`, `{"ip":"203.0.113.0"}`},
		{`{"ip":"fe80::1%eth0"}`, `{"ip":"fe80::"}`},
		{`{"ip":"not an address"}`, `{}`},
		{`{"ip":12}`, `{}`},
		{`{"client":{"ip":"10.1.2.3","secret":"s","keep":true}}`, `{"client":{"ip":"10.1.2.0","keep":true}}`},
		{`{"client":"10.1.2.3"}`, `{"client":"10.1.2.3"}`}, // not an object: the nested rule does not apply
		{`{"email":"a@example.com"}`, `{"email":"` + hashOf(`"a@example.com"`) + `"}`},
	} {
		got, err := p.Apply(json.RawMessage(tc.in))
		if err != nil {
			t.Fatalf("Apply(%s): %v", tc.in, err)
		}
		if string(got) != tc.want {
			t.Errorf("Apply(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	h := hashOf(`"a@example.com"`)
	if !strings.HasPrefix(h, "hmac-sha256:") || len(h) != len("hmac-sha256:")+64 || strings.Contains(h, "example") {
		t.Errorf("hash = %q", h)
	}
	if hashOf(`"a@example.com"`) != h || hashOf(`"b@example.com"`) == h {
		t.Error("the hash is not a function of the value")
	}
	other, _ := domain.ParsePrivacy("email:hash", []byte("another key of 16+ bytes"))
	out, _ := other.Apply(json.RawMessage(`{"email":"a@example.com"}`))
	if strings.Contains(string(out), h) {
		t.Error("the hash does not depend on the key")
	}
}

func TestParsePrivacyRefuses(t *testing.T) {
	for _, spec := range []string{"password", ":drop", "a:explode", "a:drop,a:hash", ".a:drop", "a..b:drop", "email:hash"} {
		if _, err := domain.ParsePrivacy(spec, nil); err == nil {
			t.Errorf("ParsePrivacy(%q) accepted", spec)
		}
	}
	if p, err := domain.ParsePrivacy("", nil); err != nil || len(p.Rules) != 0 {
		t.Errorf("no rules: %+v, %v", p, err)
	}
}

func TestSubscriptionFilterErasure(t *testing.T) {
	er := domain.Change{Kind: domain.ChangeErased, Erasure: &domain.Erasure{UserID: 7}}
	login := domain.Change{Kind: domain.ChangeRecorded, Event: domain.Event{UserID: 7, Action: "login"}}
	for _, tc := range []struct {
		f         domain.SubscriptionFilter
		er, login bool
	}{
		{domain.SubscriptionFilter{}, true, true},
		{domain.SubscriptionFilter{Actions: []domain.Action{"upload_file"}}, true, false},
		{domain.SubscriptionFilter{Users: []int64{8}}, false, false},
		{domain.SubscriptionFilter{Users: []int64{7}}, true, true},
		{domain.SubscriptionFilter{Kinds: []domain.ChangeKind{domain.ChangeRecorded}}, false, true},
	} {
		if got := tc.f.Match(er); got != tc.er {
			t.Errorf("%+v: erasure matched %v, want %v", tc.f, got, tc.er)
		}
		if got := tc.f.Match(login); got != tc.login {
			t.Errorf("%+v: login matched %v, want %v", tc.f, got, tc.login)
		}
	}
}
