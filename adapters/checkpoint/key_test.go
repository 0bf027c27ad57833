package checkpoint

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "sub", "checkpoint.pem")
	key, created, err := LoadOrCreateKey(path)
	if err != nil || !created || len(key) != ed25519.PrivateKeySize {
		t.Fatalf("first LoadOrCreateKey: %d-byte key, created %v, %v", len(key), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, %v; want 0700", di.Mode(), err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("key file %q, %v; want PEM PRIVATE KEY", b, err)
	}
	again, created, err := LoadOrCreateKey(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("second LoadOrCreateKey: created %v, same key %v, %v; want the key written first", created, again.Equal(key), err)
	}
	if es, _ := os.ReadDir(filepath.Dir(path)); len(es) != 1 {
		t.Fatalf("%d files by the key, want 1 (no temporary file left)", len(es))
	}

	if err := os.WriteFile(path+".bad", []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreateKey(path + ".bad"); err == nil || created || !strings.Contains(err.Error(), path+".bad") {
		t.Fatalf("LoadOrCreateKey of a bad key file: created %v, %v; want an error naming the file", created, err)
	}
}

func TestLoadOrCreateKeyInWorkingDir(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, created, err := LoadOrCreateKey("key.pem"); err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
}

func TestParseKey(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(0xf0 + i) // encodes with + and / in the standard alphabet
	}
	want := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKCS8PrivateKey(want)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	pubPEM := string(PublicKeyPEM(want.Public().(ed25519.PublicKey)))

	for _, tc := range []struct {
		name, in, err string // err: "" when the key is want
	}{
		{"PEM", privPEM, ""},
		{"PEM with spaces around", "\n  " + privPEM + "\n\n", ""},
		{"base64 standard", base64.StdEncoding.EncodeToString(seed), ""},
		{"base64 raw URL", base64.RawURLEncoding.EncodeToString(seed), ""},
		{"base64 raw standard", base64.RawStdEncoding.EncodeToString(seed), ""},
		{"base64 URL with newline", base64.URLEncoding.EncodeToString(seed) + "\n", ""},
		{"garbage", "correct horse battery staple", "neither PEM"},
		{"empty", "  ", "empty"},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(seed[:31]), "decodes to 31 bytes"},
		{"base64 of a whole private key", base64.StdEncoding.EncodeToString(want), "decodes to 64 bytes"},
		{"a public key", pubPEM, `PEM "PUBLIC KEY", want "PRIVATE KEY"`},
		{"an ECDSA key", ecPEM, "want an Ed25519 key"},
		{"two PEM blocks", privPEM + privPEM, "more than one PEM block"},
		{"broken PEM", "-----BEGIN PRIVATE KEY-----\nAAAA", "malformed PEM"},
		{"PEM not PKCS#8", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})), "not PKCS#8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if tc.err == "" {
				if err != nil || !got.Equal(want) {
					t.Fatalf("ParseKey: %v; same key %v", err, got.Equal(want))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseKey: %v; want an error saying %q", err, tc.err)
			}
			if in := strings.TrimSpace(tc.in); len(in) > 8 && strings.Contains(err.Error(), in) {
				t.Fatalf("the error repeats the key: %v", err)
			}
		})
	}
}

func TestPublicKeyPEM(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	b := PublicKeyPEM(pub)
	if !strings.HasPrefix(string(b), "-----BEGIN PUBLIC KEY-----\n") {
		t.Fatalf("PublicKeyPEM: %s", b)
	}
	for _, in := range []string{string(b), base64.StdEncoding.EncodeToString(pub), base64.RawURLEncoding.EncodeToString(pub)} {
		got, err := ParsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "garbage!", base64.StdEncoding.EncodeToString(testKey), string(PublicKeyPEM(pub)[:30])} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Fatalf("ParsePublicKey(%q) succeeded", in)
		}
	}
	der, _ := x509.MarshalPKCS8PrivateKey(testKey)
	if _, err := ParsePublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))); err == nil || !strings.Contains(err.Error(), `want "PUBLIC KEY"`) {
		t.Fatalf("ParsePublicKey of a private key: %v", err)
	}
}
