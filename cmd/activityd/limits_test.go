package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
)

func TestLoadConfigAbuseLimits(t *testing.T) {
	prefixes := func(ss ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, s := range ss {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		return ps
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		trusted  []netip.Prefix
		failures ports.Limit
		rate     ports.Limit
	}{
		{name: "defaults: no proxy trusted, 30 failures a minute, no rate limit",
			failures: ports.Limit{Rate: 30, Period: time.Minute, Burst: 30}},
		{name: "TRUSTED_PROXIES ranges and addresses",
			env:      map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 2001:db8::/32,::ffff:198.51.100.1,fe80::1%eth0, 172.16.5.9/12"},
			trusted:  prefixes("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32", "fe80::1/128", "172.16.0.0/12"),
			failures: ports.Limit{Rate: 30, Period: time.Minute, Burst: 30}},
		{name: "AUTH_FAILURE_LIMIT sets the burst too",
			env:      map[string]string{"AUTH_FAILURE_LIMIT": "10"},
			failures: ports.Limit{Rate: 10, Period: time.Minute, Burst: 10}},
		{name: "AUTH_FAILURE_BURST",
			env:      map[string]string{"AUTH_FAILURE_LIMIT": "10", "AUTH_FAILURE_BURST": "50"},
			failures: ports.Limit{Rate: 10, Period: time.Minute, Burst: 50}},
		{name: "AUTH_FAILURE_LIMIT=0 disables",
			env: map[string]string{"AUTH_FAILURE_LIMIT": "0"}},
		{name: "RATE_LIMIT sets the burst too",
			env:      map[string]string{"RATE_LIMIT": "100"},
			failures: ports.Limit{Rate: 30, Period: time.Minute, Burst: 30},
			rate:     ports.Limit{Rate: 100, Period: time.Second, Burst: 100}},
		{name: "RATE_LIMIT_BURST",
			env:      map[string]string{"RATE_LIMIT": "100", "RATE_LIMIT_BURST": "500"},
			failures: ports.Limit{Rate: 30, Period: time.Minute, Burst: 30},
			rate:     ports.Limit{Rate: 100, Period: time.Second, Burst: 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.TrustedProxies, tc.trusted) {
				t.Errorf("TrustedProxies = %v, want %v", c.TrustedProxies, tc.trusted)
			}
			if got := c.authFailureLimit(); got != tc.failures {
				t.Errorf("failure limit = %+v, want %+v", got, tc.failures)
			}
			if got := c.rateLimit(); got != tc.rate {
				t.Errorf("rate limit = %+v, want %+v", got, tc.rate)
			}
		})
	}
}

func TestLoadConfigRejectsBadAbuseLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"TRUSTED_PROXIES", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}},
		{"TRUSTED_PROXIES", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}},
		{"TRUSTED_PROXIES", map[string]string{"TRUSTED_PROXIES": "10.0.0.1:8080"}},
		{"AUTH_FAILURE_LIMIT", map[string]string{"AUTH_FAILURE_LIMIT": "-1"}},
		{"AUTH_FAILURE_LIMIT", map[string]string{"AUTH_FAILURE_LIMIT": "30/m"}},
		{"AUTH_FAILURE_BURST", map[string]string{"AUTH_FAILURE_BURST": "0"}},
		{"AUTH_FAILURE_BURST", map[string]string{"AUTH_FAILURE_LIMIT": "0", "AUTH_FAILURE_BURST": "5"}},
		{"RATE_LIMIT", map[string]string{"RATE_LIMIT": "fast"}},
		{"RATE_LIMIT", map[string]string{"RATE_LIMIT": "2000000"}},
		{"RATE_LIMIT_BURST", map[string]string{"RATE_LIMIT": "10", "RATE_LIMIT_BURST": "0"}},
		{"RATE_LIMIT_BURST", map[string]string{"RATE_LIMIT_BURST": "10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("%v: err = %v, want one naming %s", tc.env, err, tc.name)
			}
		})
	}
}
