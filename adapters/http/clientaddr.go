package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses. The client of a request is its TCP peer, unless the
// peer is a trusted proxy (Config.TrustedProxies, TRUSTED_PROXIES): then
// it is read from the forwarding header, X-Forwarded-For when the request
// has one, else the standard Forwarded (RFC 7239, its for= parameters).
// The header's addresses are walked from the right (the hop nearest to
// this server) to the left, skipping trusted ones: the first untrusted
// address is the client. Everything left of it was written by the client
// or by proxies not trusted, so it is never believed. When the entry where
// the client should be is not an address (unknown, an obfuscated name,
// garbage), the nearest hop known is taken instead: the trusted proxy that
// wrote it. A peer that is not trusted is the client whatever its headers
// say.

// trustedProxies is a set of address ranges.
type trustedProxies []netip.Prefix

func (tp trustedProxies) contains(a netip.Addr) bool {
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the request's client address (see above); ok is false when
// the peer's address is not an IP address (a Unix socket).
func (s *Server) clientIP(r *http.Request) (netip.Addr, bool) {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	tp := s.limits.trusted
	if len(tp) == 0 || !tp.contains(peer) {
		return peer, true
	}
	hops := forwardedFor(r.Header)
	nearest := peer // the trusted hop that wrote the entry being read
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		switch {
		case !ok:
			return nearest, true
		case !tp.contains(a):
			return a, true
		}
		nearest = a
	}
	return nearest, true // every hop trusted: the furthest one
}

// clientAddr is the request's client address as text, for log lines;
// RemoteAddr itself when that is not an IP address.
func (s *Server) clientAddr(r *http.Request) string {
	if a, ok := s.clientIP(r); ok {
		return a.String()
	}
	return r.RemoteAddr
}

// forwardedFor lists the hop addresses of the request's forwarding header,
// as written, nearest hop last: X-Forwarded-For's entries when it has
// one (several header lines read as one list, in order), else Forwarded's
// for= values.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for e := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(e))
		}
	}
	if strings.TrimSpace(strings.Join(hops, "")) != "" {
		return hops
	}
	hops = hops[:0]
	for _, v := range h.Values("Forwarded") {
		for _, elem := range splitQuoted(v, ',') {
			hop := "" // an element without for= is a hop of unknown address
			for _, pair := range splitQuoted(elem, ';') {
				k, val, _ := strings.Cut(pair, "=")
				if strings.EqualFold(strings.TrimSpace(k), "for") {
					hop = unquote(strings.TrimSpace(val))
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}

// splitQuoted splits s at sep outside double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unquote removes an RFC 7230 quoted-string's quotes and escapes.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseHop reads one hop's address: an IP address, alone or with a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711"), or a bracketed IPv6 address.
// The result has no zone and an IPv4-mapped IPv6 address is IPv4, so that
// one client always reads the same.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}
