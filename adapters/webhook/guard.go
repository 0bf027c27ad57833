package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Server-side request forgery protection. A webhook URL is chosen by a
// subscriber, so without a guard a delivery could be aimed at the service's
// own network: its database, an admin port on loopback, a cloud metadata
// endpoint. The Guard refuses such addresses where it cannot be fooled: at
// dial time, on the IP address actually being connected to, after DNS
// resolution, so a name that resolves to a public address when the URL is
// checked and to a private one when the request is sent (DNS rebinding) is
// still refused. Operators open holes with an allow list.

// ErrRefusedAddress is wrapped by every refusal, for errors.Is.
var ErrRefusedAddress = errors.New("webhook: address not allowed")

// RefusedError names the address refused and why.
type RefusedError struct {
	Addr   string // the IP address, with its port when dialling
	Reason string // which refused range it is in
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("webhook: refusing to connect to %s (%s); add its CIDR or host name to the webhook allow list to reach it", e.Addr, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrRefusedAddress }

// refusedRange is an address range webhooks may not reach unless allowed.
type refusedRange struct {
	prefix netip.Prefix
	reason string
}

var refusedRanges = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT, RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (cloud metadata)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (broadcast)"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// IPv6 ranges that carry an IPv4 address in their last 32 bits (or, for
// 6to4, bits 16-48), which may be translated to that IPv4 address on the way.
var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	compatPrefix = netip.MustParsePrefix("::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 is the IPv4 address an IPv6 address stands for, if any.
func embeddedIPv4(a netip.Addr) (netip.Addr, string, bool) {
	if !a.Is6() {
		return netip.Addr{}, "", false
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), "IPv4-mapped", true
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case compatPrefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-compatible", true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	}
	return netip.Addr{}, "", false
}

// refusal is why a is in a refused range, or "" when it is not.
func refusal(a netip.Addr) string {
	a = a.WithZone("")
	if !a.IsValid() {
		return "not an IP address"
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	if v4, form, ok := embeddedIPv4(a); ok {
		for _, r := range refusedRanges {
			if r.prefix.Contains(v4) {
				return form + " " + r.reason
			}
		}
	}
	return ""
}

// Guard decides which addresses outgoing webhook requests may reach.
// The zero value refuses every range above; NewGuard adds the exceptions.
type Guard struct {
	nets  []netip.Prefix
	hosts map[string]bool
}

// NewGuard makes a Guard whose allow list holds CIDRs ("10.0.0.0/8"), single
// IP addresses, or host names ("hooks.internal", exact match, any case) that
// may be reached although private. A host name is trusted with whatever its
// DNS answers, so list only names whose DNS the operator controls.
func NewGuard(allow []string) (*Guard, error) {
	g := &Guard{hosts: map[string]bool{}}
	for _, entry := range allow {
		e := strings.TrimSpace(entry)
		switch {
		case e == "":
			return nil, fmt.Errorf("webhook allow list: empty entry")
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("webhook allow list: %q is not a CIDR: %w", entry, err)
			}
			g.nets = append(g.nets, p.Masked())
		default:
			if a, err := netip.ParseAddr(e); err == nil {
				a = a.WithZone("")
				g.nets = append(g.nets, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
			h, ok := normalHost(e)
			if !ok {
				return nil, fmt.Errorf("webhook allow list: %q is neither a CIDR, an IP address nor a host name", entry)
			}
			g.hosts[h] = true
		}
	}
	return g, nil
}

// normalHost is a DNS name lower-cased without its trailing dot; ok is false
// when s is not made of letters, digits, '-', '_' and '.' labels.
func normalHost(s string) (string, bool) {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s, true
}

func (g *Guard) hostAllowed(host string) bool {
	h, ok := normalHost(host)
	return ok && g.hosts[h]
}

func (g *Guard) addrAllowed(a netip.Addr) bool {
	a = a.WithZone("")
	for _, p := range g.nets {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// checkAddr refuses a when it is in a refused range and not allowed; shown
// is how the error names it.
func (g *Guard) checkAddr(a netip.Addr, shown string) error {
	reason := refusal(a)
	if reason == "" || g.addrAllowed(a) {
		return nil
	}
	return &RefusedError{Addr: shown, Reason: reason}
}

// control is the net.Dialer Control func for a connection to host (as named
// in the request): it sees the resolved address about to be connected to.
func (g *Guard) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return fmt.Errorf("%w: network %s to %s is not TCP", ErrRefusedAddress, network, address)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dialled address %q: %v", ErrRefusedAddress, address, err)
		}
		if g.hostAllowed(host) {
			return nil
		}
		return g.checkAddr(ap.Addr(), address)
	}
}

// dialContext dials through a net.Dialer whose Control func checks every
// address the dialer tries, knowing the host name the request named.
func (g *Guard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("webhook: dialling %q: %w", addr, err)
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control(host)}
	return d.DialContext(ctx, network, addr)
}

// Client is an HTTP client for webhook deliveries: every connection goes
// through the guard, no proxy from the environment is used (it would dial
// the target on our behalf, unchecked), and redirects are returned rather
// than followed, so a subscriber cannot bounce a delivery somewhere else.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           g.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// CheckURL vets a webhook URL when it is subscribed: absolute, https (or http
// when allowHTTP), no user:password, a host, and an IP-literal host outside
// the refused ranges unless allowed. Names are only resolved, and checked, at
// dial time, except localhost (RFC 6761: always loopback), refused here.
func (g *Guard) CheckURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("webhook URL: %w", err)
	}
	switch {
	case !u.IsAbs():
		return fmt.Errorf("webhook URL %q: not absolute", raw)
	case u.Scheme == "http" && !allowHTTP:
		return fmt.Errorf("webhook URL %q: must be https", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("webhook URL %q: scheme %q, want https", raw, u.Scheme)
	case u.Opaque != "":
		return fmt.Errorf("webhook URL %q: no host (write scheme://host/...)", raw)
	case u.User != nil:
		return fmt.Errorf("webhook URL: must not carry a user name or password")
	case u.Hostname() == "":
		return fmt.Errorf("webhook URL %q: no host", raw)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if err := g.checkAddr(a, host); err != nil {
			return fmt.Errorf("webhook URL %q: %w", raw, err)
		}
		return nil
	}
	h, ok := normalHost(host)
	if !ok {
		return fmt.Errorf("webhook URL %q: %q is not a valid host name", raw, host)
	}
	if (h == "localhost" || strings.HasSuffix(h, ".localhost")) && !g.hosts[h] {
		return fmt.Errorf("webhook URL %q: %w", raw, &RefusedError{Addr: host, Reason: "localhost is loopback"})
	}
	return nil
}
