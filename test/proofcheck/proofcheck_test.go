// Package proofcheck runs the proof checker docs/evidence.md gives as "a
// few lines of code", exactly as printed there, on real proofs: the
// documentation cannot drift from the scheme.
package proofcheck

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// docProgram is the Go code block of docs/evidence.md that is a command.
func docProgram(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "evidence.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], "package main") {
			return m[1]
		}
	}
	t.Fatal("docs/evidence.md has no Go program")
	return ""
}

func TestDocumentedProofCheck(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed to run the documented program")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "proofcheck.go"), []byte(docProgram(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "proofcheck")
	build := exec.Command("go", "build", "-o", bin, "proofcheck.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the documented program does not build: %v\n%s", err, out)
	}

	ctx := context.Background()
	st := memory.New()
	_, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	ev := app.NewEvidence(st, app.EvidenceConfig{Key: key, Clock: ports.SystemClock})
	now := domain.Normalize(time.Now())
	var ids []domain.ID
	for i, u := range []int64{3, 7, 7, 9, 7, 11, 12} {
		at := now.Add(time.Duration(i) * time.Millisecond)
		e := domain.Event{ID: domain.NewID(at), UserID: u, Action: "login", Status: domain.StatusPending,
			OccurredAt: at.Add(-time.Hour), RecordedAt: at, UpdatedAt: at, Metadata: []byte(`{"i":` + string(rune('0'+i)) + `}`)}
		if _, _, err := st.Create(ctx, e, "t"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if _, err := st.SetStatus(ctx, ids[1], domain.StatusPending, domain.StatusInProgress, now.Add(time.Second), "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	admin := domain.Principal{Name: "t", Scopes: []domain.Scope{domain.ScopeAdmin}}
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	run := func(keyB64 string, proof []byte) (string, error) {
		cmd := exec.Command(bin, keyB64)
		cmd.Stdin = bytes.NewReader(proof)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, id := range ids {
		p, err := ev.Proof(ctx, admin, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		if out, err := run(pub, b); err != nil || !strings.HasPrefix(out, "OK:") {
			t.Fatalf("event %s: the documented program says %q (%v)\n%s", id, out, err, b)
		}
		// What it must refuse: another key, a changed action, a changed path.
		if out, err := run(base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey)), b); err == nil {
			t.Fatalf("another key accepted: %s", out)
		}
		bad := p
		bad.Entry.Action = "deleted"
		b2, _ := json.Marshal(bad)
		if out, err := run(pub, b2); err == nil {
			t.Fatalf("a changed action accepted: %s", out)
		}
		if len(p.Path) > 0 {
			bad = p
			bad.Path = append([]domain.Hash(nil), p.Path...)
			bad.Path[0][0] ^= 1
			b3, _ := json.Marshal(bad)
			if out, err := run(pub, b3); err == nil {
				t.Fatalf("a changed audit path accepted: %s", out)
			}
		}
	}
}
