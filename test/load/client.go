package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/activityd/activityd/test/load/loopback"
)

// checkLoopbackURL parses the -url flag: see loopback.BaseURL.
func checkLoopbackURL(raw string) (*url.URL, error) { return loopback.BaseURL("-url", raw) }

// errNotLoopback is returned by the dialer for a resolved non-loopback
// address (say, a hosts file mapping localhost elsewhere).
var errNotLoopback = errors.New("refusing to connect to a non-loopback address")

// loopbackOnly is a net.Dialer Control function: it runs after name
// resolution, on the address actually dialled.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%w: %s", errNotLoopback, address)
	}
	return nil
}

// newClient returns an HTTP/1.1 client that keeps one connection per
// concurrent client alive, talks only to loopback addresses and follows no
// redirect.
func newClient(cfg *config) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{
		Proxy:                 nil, // never through a proxy: the target is local
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.concurrency,
		MaxIdleConnsPerHost:   cfg.concurrency,
		MaxConnsPerHost:       cfg.concurrency,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: cfg.timeout,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
