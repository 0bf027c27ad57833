// Package loopback keeps the load tools on this machine: they accept only
// base URLs whose host is a loopback address.
package loopback

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// BaseURL parses raw, given as the value of flag, and accepts it only when
// it is an http(s) URL without credentials, query or fragment whose host is
// a loopback address: 127.0.0.0/8, ::1 or localhost.
func BaseURL(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s %q: want an http:// or https:// URL", flag, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q: want a base URL without credentials, query or fragment", flag, raw)
	}
	if !Host(u.Hostname()) {
		return nil, fmt.Errorf("%s %q: refused: the load tools only target loopback hosts (127.0.0.0/8, ::1, localhost)", flag, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// Host reports whether host (without port or brackets) is localhost or a
// loopback IP address.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}
