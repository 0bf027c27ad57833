package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of TLS_CERT_FILE and TLS_KEY_FILE
// and picks up new files without a restart (a renewal by cert-manager or
// certbot replaces them in place): at most once per checkEvery, a
// handshake looks at the files' modification times and loads the pair
// again when either changed. A pair that does not load (half written, a
// key that does not match) is logged and the previous one stays in use.
type certReloader struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certMod  time.Time
	keyMod   time.Time
	nextLook time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, checkEvery: time.Second, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads the pair; the caller holds mu or owns r.
func (r *certReloader) load() error {
	cm, km, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE %s, TLS_KEY_FILE %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certMod, r.keyMod = &cert, cm, km
	return nil
}

func (r *certReloader) modTimes() (cert, key time.Time, err error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS_CERT_FILE: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return cert, key, fmt.Errorf("TLS_KEY_FILE: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.After(r.nextLook) {
		r.nextLook = now.Add(r.checkEvery)
		cm, km, err := r.modTimes()
		switch {
		case err != nil:
			r.log.Warn("TLS certificate files unreadable; serving the loaded one", "err", err)
		case !cm.Equal(r.certMod) || !km.Equal(r.keyMod):
			if err := r.load(); err != nil {
				r.log.Warn("TLS certificate files changed but do not load; serving the previous one", "err", err)
				r.certMod, r.keyMod = cm, km // do not retry until they change again
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// hstsValue is the Strict-Transport-Security activityd sends when it
// serves TLS itself: browsers then reach it over HTTPS only, for a year
// (RFC 6797). Subdomains are not activityd's to speak for.
const hstsValue = "max-age=31536000"

// withHSTS adds Strict-Transport-Security to every answer of h.
func withHSTS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsValue)
		h.ServeHTTP(w, r)
	})
}

// tlsConfig is the API listener's TLS configuration. It offers HTTP/1.1
// only: the framing guard (httpapi.GuardFraming) wraps the TLS
// connection, which hides it from net/http's HTTP/2 negotiation.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}
