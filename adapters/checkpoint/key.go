package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The PEM block types of checkpoint keys.
const (
	privatePEM = "PRIVATE KEY" // PKCS#8
	publicPEM  = "PUBLIC KEY"  // PKIX
)

// LoadOrCreateKey reads the checkpoint signing key at path (anything
// ParseKey accepts) or, when there is no file there, makes a new key and
// writes it as PEM PKCS#8 with mode 0600, creating missing directories
// with mode 0700; created reports which. Two processes starting together
// agree on one key: the file is never replaced, and the one that finds it
// written meanwhile reads it.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint key: generating: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint key: encoding: %w", err)
	}
	dir, name := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("checkpoint key: %w", err)
	}
	err = writeNew(dir, name, pem.EncodeToMemory(&pem.Block{Type: privatePEM, Bytes: der}), 0o600)
	if errors.Is(err, fs.ErrExist) {
		key, err = readKey(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint key: %w", err)
	}
	return priv, true, nil
}

// readKey reads and parses the key file at path; its error wraps
// fs.ErrNotExist when there is no file.
func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// ParseKey reads a checkpoint signing key: PEM "PRIVATE KEY" (PKCS#8
// Ed25519, what LoadOrCreateKey writes) or the base64, standard or URL
// alphabet, padded or not, of a 32-byte Ed25519 seed (what an operator
// puts in CHECKPOINT_KEY). Its errors never repeat the key.
func ParseKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		switch {
		case block == nil:
			return nil, errors.New("checkpoint key: malformed PEM")
		case block.Type != privatePEM:
			return nil, fmt.Errorf("checkpoint key: PEM %q, want %q (PKCS#8 Ed25519)", block.Type, privatePEM)
		case len(strings.TrimSpace(string(rest))) > 0:
			return nil, errors.New("checkpoint key: more than one PEM block; want one Ed25519 private key")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("checkpoint key: PEM %q is not PKCS#8: %w", privatePEM, err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("checkpoint key: a %T, want an Ed25519 key", k)
		}
		return ed, nil
	}
	if s == "" {
		return nil, errors.New(`checkpoint key: empty; want PEM "PRIVATE KEY" (PKCS#8 Ed25519) or the base64 of a 32-byte Ed25519 seed`)
	}
	seed, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf(`checkpoint key: neither PEM "PRIVATE KEY" (PKCS#8 Ed25519) nor base64 (a 32-byte Ed25519 seed)`)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("checkpoint key: the base64 decodes to %d bytes, want a %d-byte Ed25519 seed", len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// decodeBase64 decodes s in whichever of the four base64 encodings it is.
func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// PublicKeyPEM is pub as PEM "PUBLIC KEY" (PKIX), for publishing where
// verifiers of checkpoints can fetch it.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // never for an ed25519.PublicKey
		panic(fmt.Sprintf("checkpoint: encoding an Ed25519 public key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicPEM, Bytes: der})
}

// ParsePublicKey reads a checkpoint verification key: PEM "PUBLIC KEY"
// (PKIX Ed25519, what PublicKeyPEM writes) or the base64 of its 32 bytes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		block, _ := pem.Decode([]byte(s))
		switch {
		case block == nil:
			return nil, errors.New("checkpoint public key: malformed PEM")
		case block.Type != publicPEM:
			return nil, fmt.Errorf("checkpoint public key: PEM %q, want %q (PKIX Ed25519)", block.Type, publicPEM)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("checkpoint public key: PEM %q is not PKIX: %w", publicPEM, err)
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("checkpoint public key: a %T, want an Ed25519 key", k)
		}
		return ed, nil
	}
	b, err := decodeBase64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf(`checkpoint public key: want PEM "PUBLIC KEY" (PKIX Ed25519) or the base64 of a %d-byte Ed25519 public key`, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
