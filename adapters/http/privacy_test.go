package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

// TestPrivacyOnEverySurface: METADATA_RULES apply before anything is
// stored, whichever surface records the event: /v1 single and batch, the
// event-tracking and the activity-logger routes.
func TestPrivacyOnEverySurface(t *testing.T) {
	rules, err := domain.ParsePrivacy("ip:mask-ip,password:drop,email:hash", []byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, withPrivacy(rules))
	f.create(f.u1, `{"action":"login","metadata":{"ip":"203.0.113.77","password":"hunter2","email":"a@example.com","n":1}}`)
	f.do("POST", "/v1/events/batch", f.u1, `{"events":[{"action":"login","metadata":{"ip":"2001:db8:1:2::9","password":"x"}},{"action":"viewed","metadata":{"email":"a@example.com"}}]}`).want(http.StatusOK)
	u6 := f.token(6, domain.ScopeRead, domain.ScopeWrite)
	f.do("POST", "/api/event", u6, `{"user_id":6,"event_action_timestamp":"2025-05-10T18:30:00Z","action":"deleted","metadata":{"ip":"192.168.1.10","password":"p"}}`).want(http.StatusCreated)
	f.do("POST", "/api/logs/", f.u1, `{"action":"LOGIN","metadata":{"ip":"192.168.0.1","password":"p"}}`).want(http.StatusCreated)

	stored := f.storedEvents()
	if len(stored) != 5 {
		t.Fatalf("%d events stored, want 5", len(stored))
	}
	var hashes []string
	for _, e := range stored {
		md := string(e.Metadata)
		for _, secret := range []string{"203.0.113.77", "hunter2", "a@example.com", "password", "2001:db8:1:2::9", "192.168.1.10", "192.168.0.1"} {
			if strings.Contains(md, secret) {
				t.Errorf("event %s stored %s with %q", e.ID, md, secret)
			}
		}
		if i := strings.Index(md, `"email":"hmac-sha256:`); i >= 0 {
			hashes = append(hashes, md[i:i+len(`"email":"hmac-sha256:`)+64])
		}
	}
	if len(hashes) != 2 || hashes[0] != hashes[1] {
		t.Errorf("the email hashes: %v, want two equal ones", hashes)
	}
	for _, want := range []string{`"ip":"203.0.113.0"`, `"ip":"2001:db8:1::"`, `"ip":"192.168.1.0"`, `"ip":"192.168.0.0"`} {
		found := false
		for _, e := range stored {
			found = found || strings.Contains(string(e.Metadata), want)
		}
		if !found {
			t.Errorf("no event stored %s", want)
		}
	}
}
