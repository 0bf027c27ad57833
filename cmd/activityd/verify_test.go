package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/activityd/activityd/adapters/checkpoint"
	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/adapters/storage/sqlite"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/domain"
)

// TestEvidenceCommands drives activityd checkpoint, verify and
// verify-proof over a SQLite store: a checkpoint is signed once per
// position and written to the dir: sink; verify passes, then names a row
// changed behind the store's back; a checkpoint file signed with another
// key is refused; a proof verifies offline only with the right key and
// metadata.
func TestEvidenceCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "a.db")
	env := map[string]string{
		"DATABASE_URL":        "sqlite:" + dbPath,
		"CHECKPOINT_KEY_FILE": filepath.Join(dir, "keys", "checkpoint.key"),
		"CHECKPOINT_SINKS":    "dir:" + filepath.Join(dir, "cps"),
	}
	st, err := sqlite.Open(ctx, env["DATABASE_URL"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := domain.Normalize(time.Now())
	var es []domain.Event
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		es = append(es, domain.Event{ID: domain.NewID(at), UserID: int64(40 + i%2), Action: "login", Status: domain.StatusPending,
			RecordedAt: at, OccurredAt: at, UpdatedAt: at, Metadata: []byte(`{"n":` + string(rune('0'+i)) + `}`)})
	}
	if _, err := st.CreateMany(ctx, es, "t"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if code, _, stderr := runCLI(t, env, "verify", "--user", "x"); code != 2 || !strings.Contains(stderr, "--user") {
		t.Errorf("verify --user x: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, env, "checkpoint")
	var sg struct {
		Checkpoint domain.Checkpoint `json:"checkpoint"`
		New        bool              `json:"new"`
		Written    []string          `json:"written"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &sg) != nil || !sg.New || sg.Checkpoint.Position != 5 || len(sg.Written) != 2 {
		t.Fatalf("checkpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if info, err := os.Stat(env["CHECKPOINT_KEY_FILE"]); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v", info, err)
	}
	if code, stdout, _ := runCLI(t, env, "checkpoint"); code != 0 || !strings.Contains(stdout, `"new": false`) {
		t.Errorf("a second checkpoint at the same head: exit %d, %s", code, stdout)
	}
	file := filepath.Join(dir, "cps", "checkpoint-00000000000000000005.json")
	if _, _, err := checkpoint.Read(file); err != nil {
		t.Fatalf("the dir: sink's file: %v", err)
	}

	type result struct {
		OK          bool          `json:"ok"`
		Checked     int64         `json:"checked"`
		Checkpoint  int64         `json:"checkpoint"`
		FirstBroken *domain.Break `json:"first_broken"`
	}
	verify := func(args ...string) (int, result, string) {
		code, stdout, stderr := runCLI(t, env, append([]string{"verify", "--progress=off"}, args...)...)
		var r result
		_ = json.Unmarshal([]byte(stdout), &r)
		return code, r, stdout + stderr
	}
	if code, r, out := verify(); code != 0 || !r.OK || r.Checked != 5 || r.Checkpoint != 5 {
		t.Fatalf("verify: exit %d, %s", code, out)
	}
	if code, r, out := verify("--user", "41", "--checkpoint", file); code != 0 || !r.OK || r.Checked != 2 {
		t.Fatalf("verify --user 41 --checkpoint: exit %d, %s", code, out)
	}

	// A checkpoint file signed with another key is refused.
	c, leaves, _ := checkpoint.Read(file)
	_, other, _ := ed25519.GenerateKey(nil)
	forged, err := checkpoint.Encode(c.Sign(other), leaves)
	if err != nil {
		t.Fatal(err)
	}
	forgedFile := filepath.Join(dir, "forged.json")
	if err := os.WriteFile(forgedFile, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, out := verify("--checkpoint", forgedFile); code != 2 || !strings.Contains(out, "refused") {
		t.Errorf("verify against a checkpoint of another key: exit %d, %s", code, out)
	}

	// A proof, offline.
	key, _, err := checkpoint.LoadOrCreateKey(env["CHECKPOINT_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, checkpoint.PublicKeyPEM(key.Public().(ed25519.PublicKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	otherPub := base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))
	proofFile := writeProof(t, env, es[2].ID, filepath.Join(dir, "proof.json"))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"the right key", []string{"--key", pubFile, proofFile}, 0, "proof verifies"},
		{"with its metadata", []string{"--key", pubFile, "--metadata", `{"n":2}`, proofFile}, 0, "proof verifies"},
		{"other metadata", []string{"--key", pubFile, "--metadata", `{"n":3}`, proofFile}, 1, "NOT what the entry covers"},
		{"another key", []string{"--key", otherPub, proofFile}, 1, "does NOT verify"},
		{"no key", []string{proofFile}, 2, "--key is required"},
		{"a bad key", []string{"--key", "not-a-key", proofFile}, 2, "--key"},
		{"not a proof", []string{"--key", pubFile, pubFile}, 2, "not a proof"},
	} {
		code, stdout, stderr := runCLI(t, nil, append([]string{"verify-proof"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("verify-proof, %s: exit %d (want %d), %s%s", tc.name, code, tc.code, stdout, stderr)
		}
	}

	// A row changed behind the store's back is named.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE events SET action = 'deleted' WHERE id = ?`, es[3].ID[:]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, r, out := verify()
	if code != 1 || r.OK || r.FirstBroken == nil || r.FirstBroken.Reason != domain.BreakChanged || r.FirstBroken.Position != 4 ||
		r.FirstBroken.EventID == nil || *r.FirstBroken.EventID != es[3].ID {
		t.Fatalf("verify after a changed action: exit %d, %s", code, out)
	}
}

// writeProof writes event id's proof, made as GET /v1/events/{id}/proof
// makes it, to path.
func writeProof(t *testing.T, env map[string]string, id domain.ID, path string) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := loadConfig(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(ctx, cfg, "test", slog.New(slog.DiscardHandler), func(storeInfo) {})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ev, err := p.newEvidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ev.Proof(ctx, domain.Principal{Name: "t", Scopes: []domain.Scope{domain.ScopeAdmin}}, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(pr)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEvidenceSettings: the evidence settings are read, and a bad value
// stops start-up naming its variable.
func TestEvidenceSettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		bad  string // the variable named, "" when valid
		want func(config) bool
	}{
		{nil, "", func(c config) bool {
			return !c.Unchained && c.CheckpointKeyFile == DefaultCheckpointKeyFile && c.CheckpointScheduleParsed != nil &&
				len(c.CheckpointSinks) == 1 && c.CheckpointSinks[0] == "dir:./data/checkpoints"
		}},
		{map[string]string{"EVIDENCE_CHAINS": "false"}, "", func(c config) bool { return c.Unchained }},
		{map[string]string{"EVIDENCE_CHAINS": "maybe"}, "EVIDENCE_CHAINS", nil},
		{map[string]string{"CHECKPOINT_SINKS": "stdout, dir:/x ,webhook:wh_1"}, "", func(c config) bool {
			return strings.Join(c.CheckpointSinks, "|") == "stdout|dir:/x|webhook:wh_1"
		}},
		{map[string]string{"CHECKPOINT_SINKS": "none"}, "", func(c config) bool { return len(c.CheckpointSinks) == 0 }},
		{map[string]string{"CHECKPOINT_SINKS": "s3:bucket"}, "CHECKPOINT_SINKS", nil},
		{map[string]string{"CHECKPOINT_SINKS": "dir:"}, "CHECKPOINT_SINKS", nil},
		{map[string]string{"CHECKPOINT_SCHEDULE": "off"}, "", func(c config) bool { return c.CheckpointScheduleParsed == nil }},
		{map[string]string{"CHECKPOINT_SCHEDULE": "*/15 * * * *"}, "", func(c config) bool { return c.CheckpointScheduleParsed != nil }},
		{map[string]string{"CHECKPOINT_SCHEDULE": "sometimes"}, "CHECKPOINT_SCHEDULE", nil},
	} {
		c, err := loadConfig(envOf(tc.env))
		switch {
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.bad)
		case tc.bad == "" && (err != nil || !tc.want(c)):
			t.Errorf("%v: %v, config %+v", tc.env, err, c)
		}
	}
	// A bad CHECKPOINT_KEY stops the commands that sign, naming it.
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": "sqlite:" + filepath.Join(dir, "a.db"), "CHECKPOINT_KEY": "short", "CHECKPOINT_SINKS": "none"}
	if code, _, stderr := runCLI(t, env, "checkpoint"); code == 0 || !strings.Contains(stderr, "CHECKPOINT_KEY") {
		t.Errorf("checkpoint with a bad CHECKPOINT_KEY: exit %d, %s", code, stderr)
	}
}

// TestCheckpointWebhookSink: CHECKPOINT_SINKS=webhook:ID posts each
// checkpoint to that subscription's receiver, signed with its secret like
// its deliveries, under the same URL rules; an unknown subscription stops
// the command, naming the setting.
func TestCheckpointWebhookSink(t *testing.T) {
	ctx := context.Background()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	type got struct {
		h    http.Header
		body []byte
	}
	gotc := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotc <- got{r.Header.Clone(), b}
	}))
	defer srv.Close()

	dir := t.TempDir()
	env := map[string]string{
		"DATABASE_URL":        "sqlite:" + filepath.Join(dir, "a.db"),
		"CHECKPOINT_KEY_FILE": filepath.Join(dir, "k"),
		"CHECKPOINT_SINKS":    "webhook:wh_cp",
		"WEBHOOK_ALLOW":       "127.0.0.1/32",
	}
	st, err := sqlite.Open(ctx, env["DATABASE_URL"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := domain.Normalize(time.Now())
	sub := domain.Subscription{ID: "wh_cp", URL: srv.URL + "/cp", Secrets: []domain.WebhookSecret{{Secret: secret, CreatedAt: now}},
		CreatedAt: now, CreatedBy: "t"}
	if err := st.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Create(ctx, domain.Event{ID: domain.NewID(now), UserID: 5, Action: "login", Status: domain.StatusPending,
		RecordedAt: now, OccurredAt: now, UpdatedAt: now, Metadata: []byte(`{}`)}, "t"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// http:// is refused unless WEBHOOK_ALLOW_HTTP, as for deliveries.
	if code, _, stderr := runCLI(t, env, "checkpoint"); code == 0 || !strings.Contains(stderr, "CHECKPOINT_SINKS") {
		t.Fatalf("an http:// receiver without WEBHOOK_ALLOW_HTTP: exit %d, %s", code, stderr)
	}
	env["WEBHOOK_ALLOW_HTTP"] = "true"
	code, stdout, stderr := runCLI(t, env, "checkpoint")
	if code != 0 || !strings.Contains(stdout, `"webhook:wh_cp"`) {
		t.Fatalf("checkpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var g got
	select {
	case g = <-gotc:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing")
	}
	if err := webhook.Verify(secret, g.h, g.body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("the checkpoint's signature: %v", err)
	}
	if id := g.h.Get("webhook-id"); id != "checkpoint-1" {
		t.Errorf("webhook-id %q, want checkpoint-1", id)
	}
	var typ struct{ Type string }
	_ = json.Unmarshal(g.body, &typ)
	c, leaves, err := checkpoint.Decode(g.body)
	if err != nil || typ.Type != "checkpoint.signed" || c.Position != 1 || len(leaves) != 1 || leaves[0].UserID != 5 {
		t.Fatalf("the body: type %q, %+v, %+v, %v\n%s", typ.Type, c, leaves, err, g.body)
	}

	env["CHECKPOINT_SINKS"] = "webhook:wh_nope"
	if code, _, stderr := runCLI(t, env, "checkpoint"); code == 0 || !strings.Contains(stderr, "CHECKPOINT_SINKS") {
		t.Errorf("an unknown subscription: exit %d, %s", code, stderr)
	}
}

// TestVerifyMakesNothing: activityd verify on a machine without the
// service's key file (an auditor's) makes no key and no directory; it
// asks for --key, and with it verifies.
func TestVerifyMakesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer := map[string]string{
		"DATABASE_URL":        "sqlite:" + filepath.Join(dir, "a.db"),
		"CHECKPOINT_KEY_FILE": filepath.Join(dir, "service", "checkpoint.key"),
		"CHECKPOINT_SINKS":    "dir:" + filepath.Join(dir, "service", "cps"),
	}
	st, err := sqlite.Open(ctx, signer["DATABASE_URL"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := domain.Normalize(time.Now())
	if _, _, err := st.Create(ctx, domain.Event{ID: domain.NewID(now), UserID: 9, Action: "login", Status: domain.StatusPending,
		RecordedAt: now, OccurredAt: now, UpdatedAt: now, Metadata: []byte(`{}`)}, "t"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, _, stderr := runCLI(t, signer, "checkpoint"); code != 0 {
		t.Fatalf("checkpoint: exit %d: %s", code, stderr)
	}
	key, _, err := checkpoint.LoadOrCreateKey(signer["CHECKPOINT_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))

	auditor := map[string]string{
		"DATABASE_URL":        signer["DATABASE_URL"],
		"CHECKPOINT_KEY_FILE": filepath.Join(dir, "auditor", "checkpoint.key"),
		"CHECKPOINT_SINKS":    "dir:" + filepath.Join(dir, "auditor", "cps"),
	}
	if code, _, stderr := runCLI(t, auditor, "verify", "--progress=off"); code != 2 || !strings.Contains(stderr, "--key") {
		t.Errorf("verify without a key: exit %d, %s", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, auditor, "verify", "--progress=off", "--key", pub); code != 0 || !strings.Contains(stdout, `"ok": true`) {
		t.Errorf("verify --key: exit %d, %s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "auditor")); !os.IsNotExist(err) {
		t.Errorf("verify made %s: %v", filepath.Join(dir, "auditor"), err)
	}
}
