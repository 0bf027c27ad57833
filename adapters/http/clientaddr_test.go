package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/activityd/activityd/ports"
)

// TestClientIP: the client address is the TCP peer unless the peer is a
// trusted proxy; forwarded headers from anyone else are never believed,
// whatever their shape.
func TestClientIP(t *testing.T) {
	trusted := trustedProxies{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("2001:db8:1::/48"),
	}
	for _, tc := range []struct {
		name    string
		trusted trustedProxies
		remote  string
		xff     []string // X-Forwarded-For header lines
		fwd     []string // Forwarded header lines
		want    string
	}{
		{name: "no proxies configured: the peer, headers ignored", remote: "198.51.100.7:5000",
			xff: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "no proxies configured: Forwarded ignored", remote: "198.51.100.7:5000",
			fwd: []string{"for=203.0.113.9"}, want: "198.51.100.7"},
		{name: "untrusted peer with XFF: the peer", trusted: trusted, remote: "198.51.100.7:5000",
			xff: []string{"10.0.0.1, 203.0.113.9"}, want: "198.51.100.7"},
		{name: "untrusted peer with Forwarded: the peer", trusted: trusted, remote: "198.51.100.7:5000",
			fwd: []string{`for="[2001:db8:1::5]"`}, want: "198.51.100.7"},
		{name: "trusted peer, one hop", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "trusted peer without a header: the peer", trusted: trusted, remote: "10.1.2.3:80", want: "10.1.2.3"},
		{name: "spoofed leftmost entries are skipped", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain of trusted proxies", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"6.6.6.6, 203.0.113.9, 10.9.9.9, 192.0.2.1"}, want: "203.0.113.9"},
		{name: "client posing as a trusted address left of the real one", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"10.0.0.1, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "every hop trusted: the furthest", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"10.0.0.7, 10.0.0.8"}, want: "10.0.0.7"},
		{name: "several header lines read as one list", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"6.6.6.6", "203.0.113.9, 10.0.0.2"}, want: "203.0.113.9"},
		{name: "a forged line before the proxy's", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"10.0.0.1", "203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv6 peer and client", trusted: trusted, remote: "[2001:db8:1::9]:443",
			xff: []string{"2001:db8:ffff::1"}, want: "2001:db8:ffff::1"},
		{name: "IPv6 with brackets and port", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"[2001:db8:ffff::1]:4711"}, want: "2001:db8:ffff::1"},
		{name: "IPv4 with port", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"203.0.113.9:4711"}, want: "203.0.113.9"},
		{name: "IPv4-mapped IPv6 is IPv4", trusted: trusted, remote: "[::ffff:10.1.2.3]:80",
			xff: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "zone dropped", trusted: trusted, remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "garbage where the client should be: the proxy that wrote it", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"203.0.113.9, not-an-ip, 10.0.0.5"}, want: "10.0.0.5"},
		{name: "garbage from the peer itself: the peer", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"unknown"}, want: "10.1.2.3"},
		{name: "empty entries", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{" , "}, want: "10.1.2.3"},
		{name: "a CIDR is not an address", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"203.0.113.0/24"}, want: "10.1.2.3"},
		{name: "bracketed IPv4 is garbage", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"[203.0.113.9]"}, want: "10.1.2.3"},
		{name: "Forwarded when there is no XFF", trusted: trusted, remote: "10.1.2.3:80",
			fwd:  []string{`for=6.6.6.6, for="[2001:db8:ffff::1]:4711";proto=https, for=10.0.0.4;by=10.0.0.9`},
			want: "2001:db8:ffff::1"},
		{name: "Forwarded: case, quotes, other parameters", trusted: trusted, remote: "10.1.2.3:80",
			fwd: []string{`proto=https;FOR="203.0.113.9";host="a,b;c"`}, want: "203.0.113.9"},
		{name: "Forwarded: several lines", trusted: trusted, remote: "10.1.2.3:80",
			fwd: []string{"for=6.6.6.6", "for=203.0.113.9"}, want: "203.0.113.9"},
		{name: "Forwarded: unknown and obfuscated names", trusted: trusted, remote: "10.1.2.3:80",
			fwd: []string{"for=203.0.113.9, for=unknown"}, want: "10.1.2.3"},
		{name: "Forwarded: an element without for=", trusted: trusted, remote: "10.1.2.3:80",
			fwd: []string{"for=203.0.113.9, proto=http"}, want: "10.1.2.3"},
		{name: "XFF wins over Forwarded", trusted: trusted, remote: "10.1.2.3:80",
			xff: []string{"203.0.113.9"}, fwd: []string{"for=6.6.6.6"}, want: "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{limits: &abuseLimits{trusted: tc.trusted}}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.fwd {
				r.Header.Add("Forwarded", v)
			}
			if got := s.clientAddr(r); got != tc.want {
				t.Errorf("client address %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClientAddrNotIP: a peer address that is not an IP (a Unix socket)
// is logged as is.
func TestClientAddrNotIP(t *testing.T) {
	s := &Server{limits: &abuseLimits{trusted: trustedProxies{netip.MustParsePrefix("0.0.0.0/0")}}}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "@"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := s.clientAddr(r); got != "@" {
		t.Errorf("client address %q, want the raw peer %q", got, "@")
	}
}

// TestFailureKey: IPv6 clients count by their /64.
func TestFailureKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::7", "2001:db8:1:2::/64"},
	} {
		if got := failureKey(netip.MustParseAddr(tc.addr), true, ""); got != tc.want {
			t.Errorf("failureKey(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := failureKey(netip.Addr{}, false, "@"); got != "@" {
		t.Errorf("failureKey of a non-IP peer = %q, want it as is", got)
	}
}

// TestFailureTableBounded: a flood of failures from ever new addresses
// keeps at most the table's size of them.
func TestFailureTableBounded(t *testing.T) {
	f := newFailureLimiter(ports.Limit{Rate: 30, Period: time.Minute, Burst: 30}, 100, time.Now)
	for i := range 10_000 {
		f.failed(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String())
	}
	if n := f.table.Len(); n != 100 {
		t.Fatalf("%d addresses kept after 10000, want the bound 100", n)
	}
}

// TestFailureLimiter: a key is blocked once its burst of failures is
// spent, for exactly as long as the next failure takes to come back.
func TestFailureLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFailureLimiter(ports.Limit{Rate: 30, Period: time.Minute, Burst: 3}, 10, func() time.Time { return now })
	if _, blocked := f.blocked("a"); blocked {
		t.Fatal("an address never seen is blocked")
	}
	var exhausted []bool
	for range 3 {
		exhausted = append(exhausted, f.failed("a"))
	}
	if exhausted[0] || exhausted[1] || !exhausted[2] {
		t.Errorf("exhausted after each of 3 failures = %v, want only after the third", exhausted)
	}
	wait, blocked := f.blocked("a")
	if !blocked || wait != 2*time.Second {
		t.Fatalf("after 3 failures: blocked %v for %v, want blocked for 2s (30 a minute)", blocked, wait)
	}
	if _, blocked := f.blocked("b"); blocked {
		t.Error("another address is blocked too")
	}
	now = now.Add(2 * time.Second)
	if _, blocked := f.blocked("a"); blocked {
		t.Error("still blocked once a failure came back")
	}
}
