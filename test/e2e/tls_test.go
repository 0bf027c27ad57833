package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// TestTLS: with TLS_CERT_FILE and TLS_KEY_FILE, serve answers over HTTPS
// with that certificate (a client that trusts it verifies the chain), and
// a plain-HTTP request to the port is not served.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := testenv.WriteTLSPair(t, dir, 7)
	p := binary.Serve.Start(t, dir, "DATABASE_URL=memory:", "TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key)
	if !strings.HasPrefix(p.Base, "https://") {
		t.Fatalf("serve logged %q, want an https address", p.Base)
	}
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(p.Base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 7 {
		t.Fatalf("GET /healthz: %d %s, TLS %v", resp.StatusCode, body, resp.TLS != nil)
	}
	// Browsers are told to keep to HTTPS for a year (RFC 6797).
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security %q, want max-age=31536000", got)
	}
	plain := strings.Replace(p.Base, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the TLS port answered 200: %s", b)
		}
	}

	// A pair that does not load is refused at start, naming the variable.
	_, stderr, code := binary.Run(t, dir, []string{"DATABASE_URL=memory:", "TLS_CERT_FILE=" + cert}, "serve")
	if code != 2 || !strings.Contains(stderr, "TLS_CERT_FILE") {
		t.Errorf("TLS_CERT_FILE alone: exit %d, stderr %s", code, stderr)
	}
}
