package main

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/testenv"
)

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.WriteTLSPair(t, dir, 1)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(envOf(map[string]string{"TLS_CERT_FILE": cert, "TLS_KEY_FILE": key}))
	if err != nil || c.TLSCertFile != cert || c.TLSKeyFile != key {
		t.Fatalf("a good pair: %+v, %v", c, err)
	}
	for name, env := range map[string]map[string]string{
		"cert without key": {"TLS_CERT_FILE": cert},
		"key without cert": {"TLS_KEY_FILE": key},
		"missing file":     {"TLS_CERT_FILE": filepath.Join(dir, "nope.crt"), "TLS_KEY_FILE": key},
		"not PEM":          {"TLS_CERT_FILE": garbage, "TLS_KEY_FILE": key},
	} {
		if _, err := loadConfig(envOf(env)); err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE") {
			t.Errorf("%s: %v, want an error naming TLS_CERT_FILE", name, err)
		}
	}
}

// TestCertReload: a server on the reloader answers over TLS with the
// first pair, with the second once the files are replaced, and keeps the
// second when the files are replaced by something that does not load.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.WriteTLSPair(t, dir, 1)
	r, err := newCertReloader(cert, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 0 // look at the files on every handshake
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(tls.NewListener(ln, r.tlsConfig()))
	t.Cleanup(func() { srv.Close() })

	serial := func() int64 {
		t.Helper()
		// A new connection each time: a handshake is when the certificate is chosen.
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test checks which certificate is served
			DisableKeepAlives: true,
		}}
		resp, err := client.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	testenv.WriteTLSPair(t, dir, 2)
	if got := serial(); got != 2 {
		t.Fatalf("after replacing the files: serial %d, want 2", got)
	}
	if err := os.WriteFile(cert, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(cert, later, later); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 2 {
		t.Fatalf("after a bad replacement: serial %d, want the previous 2", got)
	}
}
