package httpapi_test

// The evidence routes (issue 18) over the memory store: the checkpoint
// key, signing and listing checkpoints, a user's integrity and an event's
// inclusion proof. A proof is checked twice: with domain.Proof.Verify, and
// by a recomputation written here from docs/evidence.md alone, so that the
// JSON a client gets is enough to verify it without this code.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// evidenceFixture is a fixture whose server also serves the evidence
// routes, signing with key.
type evidenceFixture struct {
	*fixture
	key ed25519.PrivateKey
}

func newEvidenceFixture(t *testing.T) *evidenceFixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ef := &evidenceFixture{key: key}
	ef.fixture = newFixture(t, func(c *httpapi.Config, f *fixture) {
		c.Evidence = app.NewEvidence(f.store, app.EvidenceConfig{Key: key, Clock: newClock()})
	})
	return ef
}

func (ef *evidenceFixture) pub() ed25519.PublicKey { return ef.key.Public().(ed25519.PublicKey) }

// The JSON shapes, as a client reads them: strings where the document says
// hex, base64 or a time. Decoding with DisallowUnknownFields catches a
// member the document does not list.

type checkpointJSON struct {
	Position  int64  `json:"position"`
	At        string `json:"at"`
	Users     int    `json:"users"`
	Root      string `json:"root"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

type signedJSON struct {
	Checkpoint checkpointJSON    `json:"checkpoint"`
	New        bool              `json:"new"`
	Written    []string          `json:"written"`
	Failed     map[string]string `json:"failed"`
}

type checkpointPageJSON struct {
	Items      []checkpointJSON `json:"items"`
	NextBefore *int64           `json:"next_before"`
}

type breakJSON struct {
	Position int64   `json:"position"`
	UserID   int64   `json:"user_id"`
	EventID  *string `json:"event_id"`
	Kind     string  `json:"kind"`
	Reason   string  `json:"reason"`
	Detail   string  `json:"detail"`
}

type integrityJSON struct {
	OK          bool       `json:"ok"`
	Checked     int64      `json:"checked"`
	Users       int        `json:"users"`
	Position    int64      `json:"position"`
	Checkpoint  int64      `json:"checkpoint"`
	Pruned      int64      `json:"pruned"`
	FirstBroken *breakJSON `json:"first_broken"`
}

type proofJSON struct {
	Entry struct {
		Position   int64  `json:"position"`
		Kind       string `json:"kind"`
		UserID     int64  `json:"user_id"`
		EventID    string `json:"event_id"`
		Action     string `json:"action"`
		Status     string `json:"status"`
		OccurredAt string `json:"occurred_at"`
		RecordedAt string `json:"recorded_at"`
		At         string `json:"at"`
		Digest     string `json:"digest"`
	} `json:"entry"`
	Prev      string   `json:"prev"`
	Following []string `json:"following"`
	Head      struct {
		UserID   int64  `json:"user_id"`
		Position int64  `json:"position"`
		Count    int64  `json:"count"`
		Link     string `json:"link"`
	} `json:"head"`
	Index      int            `json:"index"`
	Path       []string       `json:"path"`
	Checkpoint checkpointJSON `json:"checkpoint"`
}

// decodeStrict decodes a 200/201 application/json body into v, refusing
// members v does not name.
func decodeStrict(r *response, v any) {
	r.t.Helper()
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("%s: Content-Type %q", r, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		r.t.Fatalf("%s: %v", r, err)
	}
}

func (ef *evidenceFixture) sign(want int) signedJSON {
	ef.t.Helper()
	var s signedJSON
	decodeStrict(ef.do("POST", "/v1/checkpoints", ef.admin, "").want(want), &s)
	return s
}

// feedHead is the position of the newest change.
func (ef *evidenceFixture) feedHead() int64 {
	ef.t.Helper()
	h, err := ef.store.FeedHead(context.Background())
	if err != nil {
		ef.t.Fatal(err)
	}
	return h
}

// --- An independent verifier, from docs/evidence.md ----------------------

func sum(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func str(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func mustHex(t testing.TB, what, s string, n int) []byte {
	t.Helper()
	if len(s) != 2*n || strings.ToLower(s) != s {
		t.Fatalf("%s %q: want %d lower-case hex digits", what, s, 2*n)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	return b
}

func micros(t testing.TB, what, s string) []byte {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		t.Fatalf("%s %q is not RFC 3339 UTC: %v", what, s, err)
	}
	return u64(tm.UnixMicro())
}

// checkpointMessage is what a checkpoint's signature covers.
func checkpointMessage(c checkpointJSON) []byte {
	return []byte(fmt.Sprintf("activityd-checkpoint-v1\n%d\n%s\n%d\n%s\n", c.Position, c.At, c.Users, c.Root))
}

func verifyCheckpoint(t testing.TB, pub ed25519.PublicKey, c checkpointJSON) error {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	if id := sha256.Sum256(pub); c.KeyID != hex.EncodeToString(id[:8]) {
		return fmt.Errorf("key_id %q is not this key's", c.KeyID)
	}
	if !ed25519.Verify(pub, checkpointMessage(c), sig) {
		return fmt.Errorf("the signature does not verify")
	}
	return nil
}

// rootFromPath recomputes an RFC 6962 tree's root from leaf i of n and its
// audit path (bottom up), by splitting the tree as RFC 6962 builds it: the
// last hash of the path is the sibling subtree at the top.
func rootFromPath(leaf [32]byte, i, n int, path [][32]byte) ([32]byte, bool) {
	node := func(l, r [32]byte) [32]byte { return sum([]byte{1}, l[:], r[:]) }
	if n == 1 {
		return leaf, len(path) == 0
	}
	if len(path) == 0 || i < 0 || i >= n {
		return [32]byte{}, false
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	top, rest := path[len(path)-1], path[:len(path)-1]
	if i < k {
		sub, ok := rootFromPath(leaf, i, k, rest)
		return node(sub, top), ok
	}
	sub, ok := rootFromPath(leaf, i-k, n-k, rest)
	return node(top, sub), ok
}

// verifyProofJSON checks a proof as docs/evidence.md tells an independent
// verifier to, from its JSON alone.
func verifyProofJSON(t testing.TB, pub ed25519.PublicKey, p proofJSON) error {
	t.Helper()
	e := p.Entry
	id := mustHex(t, "event_id", strings.ReplaceAll(e.EventID, "-", ""), 16)
	entry := sum([]byte("activityd/entry/v1\x00"), u64(e.Position), str(e.Kind), u64(e.UserID), id,
		str(e.Action), str(e.Status), micros(t, "occurred_at", e.OccurredAt), micros(t, "recorded_at", e.RecordedAt),
		micros(t, "at", e.At), mustHex(t, "digest", e.Digest, 32))
	link := sum([]byte("activityd/link/v1\x00"), mustHex(t, "prev", p.Prev, 32), entry[:])
	for i, h := range p.Following {
		link = sum([]byte("activityd/link/v1\x00"), link[:], mustHex(t, fmt.Sprint("following ", i), h, 32))
	}
	if hex.EncodeToString(link[:]) != p.Head.Link {
		return fmt.Errorf("the links from the entry end at %x, not at the head's %s", link, p.Head.Link)
	}
	if p.Head.UserID != e.UserID || e.Position > p.Head.Position || p.Head.Position > p.Checkpoint.Position {
		return fmt.Errorf("entry, head and checkpoint do not line up")
	}
	leaf := sum([]byte{0}, []byte("activityd/leaf/v1\x00"), u64(p.Head.UserID), u64(p.Head.Position), u64(p.Head.Count), link[:])
	path := make([][32]byte, len(p.Path))
	for i, h := range p.Path {
		copy(path[i][:], mustHex(t, fmt.Sprint("path ", i), h, 32))
	}
	root, ok := rootFromPath(leaf, p.Index, p.Checkpoint.Users, path)
	if !ok {
		return fmt.Errorf("the path is not one of a tree of %d leaves", p.Checkpoint.Users)
	}
	if hex.EncodeToString(root[:]) != p.Checkpoint.Root {
		return fmt.Errorf("the path gives root %x, the checkpoint signed %s", root, p.Checkpoint.Root)
	}
	return verifyCheckpoint(t, pub, p.Checkpoint)
}

// --- The routes -----------------------------------------------------------

// The checkpoint key is published without credentials, and verifies the
// checkpoints the server signs.
func TestCheckpointKey(t *testing.T) {
	ef := newEvidenceFixture(t)
	for _, tc := range []struct {
		name   string
		method string
		token  string
	}{
		{"no credentials", "GET", ""},
		{"a credential", "GET", ef.u1},
		{"an unknown credential", "GET", "adt_nope"},
		{"HEAD", "HEAD", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			r := ef.do(tc.method, httpapi.CheckpointKeyPath, tc.token, "").want(http.StatusOK)
			if cc := r.hdr.Get("Cache-Control"); cc != "public, max-age=3600" {
				t.Errorf("Cache-Control %q", cc)
			}
			if tc.method == "HEAD" {
				return
			}
			var k struct {
				Algorithm string `json:"algorithm"`
				KeyID     string `json:"key_id"`
				PublicKey string `json:"public_key"`
				PEM       string `json:"pem"`
			}
			decodeStrict(r, &k)
			raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
			if err != nil || !bytes.Equal(raw, ef.pub()) {
				t.Fatalf("public_key %q is not the signing key's (%v)", k.PublicKey, err)
			}
			blk, rest := pem.Decode([]byte(k.PEM))
			if blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
				t.Fatalf("pem %q is not one PUBLIC KEY block", k.PEM)
			}
			pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil || !ef.pub().Equal(pk) {
				t.Fatalf("pem is not the signing key (%v)", err)
			}
			if id := sha256.Sum256(raw); k.Algorithm != "Ed25519" || k.KeyID != hex.EncodeToString(id[:8]) {
				t.Errorf("algorithm %q, key_id %q", k.Algorithm, k.KeyID)
			}
		})
	}
	ef.t = t

	// A client that fetched the key verifies a checkpoint with it alone.
	var k struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal(ef.do("GET", httpapi.CheckpointKeyPath, "", "").body, &k); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(k.PublicKey)
	ef.create(ef.u1, `{"action":"login"}`)
	s := ef.sign(http.StatusCreated)
	if err := verifyCheckpoint(t, ed25519.PublicKey(raw), s.Checkpoint); err != nil {
		t.Errorf("the published key does not verify the checkpoint signed: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if err := verifyCheckpoint(t, other.Public().(ed25519.PublicKey), s.Checkpoint); err == nil {
		t.Error("another key verifies the checkpoint")
	}
}

// POST /v1/checkpoints signs when something changed (201), returns the
// newest otherwise (200), and is an admin's only.
func TestSignCheckpoint(t *testing.T) {
	ef := newEvidenceFixture(t)
	ef.create(ef.u1, `{"action":"login"}`)
	ef.create(ef.u2, `{"action":"login"}`)
	var first signedJSON
	for _, tc := range []struct {
		name, token, path, body string
		before                  func() // what happens first
		status                  int
		new                     bool
		blames                  string // the field a problem names
	}{
		{name: "no credentials", status: http.StatusUnauthorized},
		{name: "a user", token: ef.u1, status: http.StatusForbidden},
		{name: "a read-only user", token: ef.u1ro, status: http.StatusForbidden},
		{name: "admin, changes unsigned", token: ef.admin, status: http.StatusCreated, new: true},
		{name: "admin, nothing changed", token: ef.admin, status: http.StatusOK},
		{name: "admin, empty object", token: ef.admin, body: `{}`, status: http.StatusOK},
		{name: "admin, a member", token: ef.admin, body: `{"force":true}`, status: http.StatusBadRequest, blames: "force"},
		{name: "admin, not an object", token: ef.admin, body: `[]`, status: http.StatusBadRequest, blames: "(body)"},
		{name: "admin, not JSON", token: ef.admin, body: `{`, status: http.StatusBadRequest},
		{name: "admin, a query parameter", token: ef.admin, path: "?now=1", status: http.StatusBadRequest, blames: "now"},
		{name: "a user, after a change", token: ef.u2, before: func() { ef.create(ef.u2, `{"action":"logout"}`) }, status: http.StatusForbidden},
		{name: "admin, after a change", token: ef.admin, status: http.StatusCreated, new: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			if tc.before != nil {
				tc.before()
			}
			r := ef.do("POST", "/v1/checkpoints"+tc.path, tc.token, tc.body)
			if tc.status >= 400 {
				p := r.problem(tc.status)
				if tc.blames != "" && !p.blames(tc.blames) {
					t.Errorf("problem blames %q, want %q", p.fields(), tc.blames)
				}
				return
			}
			var s signedJSON
			decodeStrict(r.want(tc.status), &s)
			if s.New != tc.new {
				t.Errorf("new = %v, want %v", s.New, tc.new)
			}
			if head := ef.feedHead(); s.Checkpoint.Position != head {
				t.Errorf("checkpoint at %d, the feed's head is %d", s.Checkpoint.Position, head)
			}
			if err := verifyCheckpoint(t, ef.pub(), s.Checkpoint); err != nil {
				t.Error(err)
			}
			switch {
			case tc.new && (len(s.Written) != 1 || s.Written[0] != "store"):
				t.Errorf("written %q, want [store]", s.Written)
			case !tc.new && (s.Written == nil || len(s.Written) != 0):
				t.Errorf("written %q, want []", s.Written)
			case !tc.new && s.Checkpoint != first.Checkpoint:
				t.Errorf("not new, yet not the newest checkpoint: %+v, want %+v", s.Checkpoint, first.Checkpoint)
			}
			if tc.new {
				first = s
			}
		})
	}
}

// GET /v1/checkpoints lists newest first, pages with before and limit,
// and names the parameter at fault.
func TestListCheckpoints(t *testing.T) {
	ef := newEvidenceFixture(t)
	list := func(path, token string) checkpointPageJSON {
		ef.t.Helper()
		var p checkpointPageJSON
		decodeStrict(ef.do("GET", path, token, "").want(http.StatusOK), &p)
		return p
	}
	if p := list("/v1/checkpoints", ef.u1); p.Items == nil || len(p.Items) != 0 || p.NextBefore != nil {
		t.Fatalf("no checkpoint yet: %+v", p)
	}
	var positions []int64 // newest first
	for i := range 3 {
		ef.create(ef.u1, fmt.Sprintf(`{"action":"login","metadata":{"n":%d}}`, i))
		positions = append([]int64{ef.sign(http.StatusCreated).Checkpoint.Position}, positions...)
	}
	ptr := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name, query string
		want        []int64
		next        *int64
	}{
		{"all, newest first", "", positions, nil},
		{"limit", "?limit=2", positions[:2], ptr(positions[1])},
		{"the next page", fmt.Sprintf("?limit=2&before=%d", positions[1]), positions[2:], nil},
		{"exactly the rest", fmt.Sprintf("?limit=1&before=%d", positions[1]), positions[2:], nil},
		{"before the newest", fmt.Sprintf("?before=%d", positions[0]), positions[1:], nil},
		{"before the oldest", fmt.Sprintf("?before=%d", positions[2]), nil, nil},
		{"before beyond", "?before=9223372036854775807", positions, nil},
		{"limit 100", "?limit=100", positions, nil},
		{"empty parameters", "?limit=&before=", positions, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			p := list("/v1/checkpoints"+tc.query, ef.u2)
			got := []int64{}
			for _, c := range p.Items {
				got = append(got, c.Position)
				if err := verifyCheckpoint(t, ef.pub(), c); err != nil {
					t.Errorf("checkpoint %d: %v", c.Position, err)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(append([]int64{}, tc.want...)) {
				t.Errorf("positions %v, want %v", got, tc.want)
			}
			if (p.NextBefore == nil) != (tc.next == nil) || (p.NextBefore != nil && *p.NextBefore != *tc.next) {
				t.Errorf("next_before %v, want %v", fmtPtr(p.NextBefore), fmtPtr(tc.next))
			}
		})
	}
	// Paging to the end through next_before visits each checkpoint once.
	ef.t = t
	var seen []int64
	for path := "/v1/checkpoints?limit=1"; ; {
		p := list(path, ef.u1)
		for _, c := range p.Items {
			seen = append(seen, c.Position)
		}
		if p.NextBefore == nil {
			break
		}
		path = fmt.Sprintf("/v1/checkpoints?limit=1&before=%d", *p.NextBefore)
	}
	if fmt.Sprint(seen) != fmt.Sprint(positions) {
		t.Errorf("paged through %v, want %v", seen, positions)
	}

	for _, tc := range []struct {
		name, query, token string
		status             int
		blames             string
	}{
		{"limit 0", "?limit=0", ef.u1, 422, "limit"},
		{"limit 101", "?limit=101", ef.u1, 422, "limit"},
		{"limit not a number", "?limit=x", ef.u1, 422, "limit"},
		{"limit negative", "?limit=-1", ef.u1, 422, "limit"},
		{"limit huge", "?limit=99999999999999999999", ef.u1, 422, "limit"},
		{"before 0", "?before=0", ef.u1, 422, "before"},
		{"before negative", "?before=-5", ef.u1, 422, "before"},
		{"before not a number", "?before=x", ef.u1, 422, "before"},
		{"both bad", "?before=x&limit=x", ef.u1, 422, "before"},
		{"unknown parameter", "?colour=red", ef.u1, 400, "colour"},
		{"repeated parameter", "?limit=1&limit=2", ef.u1, 400, "limit"},
		{"malformed query", "?limit=%zz", ef.u1, 400, ""},
		{"no credentials", "", "", 401, ""},
		{"write-only", "", ef.u1wo, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			p := ef.do("GET", "/v1/checkpoints"+tc.query, tc.token, "").problem(tc.status)
			if tc.blames != "" && !p.blames(tc.blames) {
				t.Errorf("problem blames %q, want %q", p.fields(), tc.blames)
			}
		})
	}
}

func fmtPtr(p *int64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatInt(*p, 10)
}

// GET /v1/users/{user_id}/integrity: a user's own chain, or any for an
// admin, against the newest checkpoint.
func TestUserIntegrity(t *testing.T) {
	ef := newEvidenceFixture(t)
	integrity := func(path, token string) integrityJSON {
		ef.t.Helper()
		var res integrityJSON
		decodeStrict(ef.do("GET", path, token, "").want(http.StatusOK), &res)
		return res
	}
	// Before any checkpoint: the chain alone.
	ef.create(ef.u1, `{"action":"login"}`)
	if res := integrity("/v1/users/1/integrity", ef.u1); !res.OK || res.Checked != 1 || res.Checkpoint != 0 || res.FirstBroken != nil {
		t.Errorf("no checkpoint: %+v", res)
	}
	// User 1: three events, one moved along the workflow, one erased
	// (5 changes with the erasure); user 2: one event.
	e := ef.create(ef.u1, `{"action":"upload_file","metadata":{"name":"a.txt"}}`)
	ef.do("PATCH", "/v1/events/"+e.ID, ef.u1, `{"status":"IN_PROGRESS"}`).want(http.StatusOK)
	ef.create(ef.u2, `{"action":"login"}`)
	cp := ef.sign(http.StatusCreated).Checkpoint
	ef.do("POST", "/v1/users/1/erasure", ef.admin, "").want(http.StatusOK)
	ef.create(ef.u1, `{"action":"logout"}`) // after the checkpoint: checked too
	const user1Changes = 5

	for _, tc := range []struct {
		name, path, token string
		status            int
		checked           int64
	}{
		{"own chain", "/v1/users/1/integrity", ef.u1, 200, user1Changes},
		{"own chain, read-only", "/v1/users/1/integrity", ef.u1ro, 200, user1Changes},
		{"admin", "/v1/users/1/integrity", ef.admin, 200, user1Changes},
		{"admin, another user", "/v1/users/2/integrity", ef.admin, 200, 1},
		{"admin, a user with no changes", "/v1/users/99/integrity", ef.admin, 200, 0},
		{"another user's chain", "/v1/users/1/integrity", ef.u2, 403, 0},
		{"a user, another chain", "/v1/users/2/integrity", ef.u1, 403, 0},
		{"write-only", "/v1/users/1/integrity", ef.u1wo, 403, 0},
		{"no credentials", "/v1/users/1/integrity", "", 401, 0},
		{"non-numeric user", "/v1/users/abc/integrity", ef.admin, 404, 0},
		{"user 0", "/v1/users/0/integrity", ef.admin, 404, 0},
		{"negative user", "/v1/users/-1/integrity", ef.admin, 404, 0},
		{"not canonical", "/v1/users/01/integrity", ef.u1, 404, 0},
		{"too large", "/v1/users/9223372036854775808/integrity", ef.admin, 404, 0},
		{"a query parameter", "/v1/users/1/integrity?full=1", ef.u1, 400, 0},
		{"POST", "/v1/users/1/integrity", ef.u1, 405, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			if tc.status != 200 {
				method := "GET"
				if tc.status == 405 {
					method = "POST"
				}
				ef.do(method, tc.path, tc.token, "").problem(tc.status)
				return
			}
			res := integrity(tc.path, tc.token)
			if !res.OK || res.FirstBroken != nil || res.Checked != tc.checked || res.Checkpoint != cp.Position {
				t.Errorf("%+v, want ok, %d checked against checkpoint %d", res, tc.checked, cp.Position)
			}
			if wantUsers := min(tc.checked, 1); int64(res.Users) != wantUsers {
				t.Errorf("users %d, want %d", res.Users, wantUsers)
			}
		})
	}
}

// A newest checkpoint that does not verify (signed by another key, or
// whose leaves are not what it signed) means the history cannot be
// vouched for: integrity answers ok=false, "rewritten" — never an error.
// The memory store cannot be tampered with, so the checkpoint is stored
// directly.
func TestIntegrityForeignCheckpoint(t *testing.T) {
	_, other, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name string
		make func(ef *evidenceFixture, c domain.Checkpoint, heads []domain.ChainHead) (domain.Checkpoint, []domain.ChainHead)
	}{
		{"signed by another key", func(_ *evidenceFixture, c domain.Checkpoint, heads []domain.ChainHead) (domain.Checkpoint, []domain.ChainHead) {
			return c.Sign(other), heads
		}},
		{"leaves not the ones signed", func(ef *evidenceFixture, c domain.Checkpoint, heads []domain.ChainHead) (domain.Checkpoint, []domain.ChainHead) {
			forged := append([]domain.ChainHead{}, heads...)
			forged[0].Link[0] ^= 1
			return c.Sign(ef.key), forged
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef := newEvidenceFixture(t)
			first := ef.create(ef.u1, `{"action":"login"}`)
			ef.create(ef.u2, `{"action":"login"}`)
			ef.sign(http.StatusCreated)
			ef.create(ef.u1, `{"action":"logout"}`)

			ctx := context.Background()
			pos, heads, err := ef.store.ChainHeads(ctx)
			if err != nil {
				t.Fatal(err)
			}
			leaves := make([]domain.Hash, len(heads))
			for i, h := range heads {
				leaves[i] = h.Leaf()
			}
			c, stored := tc.make(ef, domain.Checkpoint{Position: pos, At: t0, Users: len(heads), Root: domain.MerkleRoot(leaves)}, heads)
			if err := ef.store.SaveCheckpoint(ctx, c, stored); err != nil {
				t.Fatal(err)
			}

			for _, tok := range []string{ef.u1, ef.admin} {
				var res integrityJSON
				decodeStrict(ef.do("GET", "/v1/users/1/integrity", tok, "").want(http.StatusOK), &res)
				b := res.FirstBroken
				if res.OK || b == nil || b.Reason != "rewritten" || b.Position != pos || b.UserID != 1 || b.Detail == "" {
					t.Errorf("integrity = %+v, first_broken %+v; want ok false, rewritten at %d", res, b, pos)
				}
			}
			// Listing still shows it: a client sees, and can check, what is stored.
			var page checkpointPageJSON
			decodeStrict(ef.do("GET", "/v1/checkpoints?limit=1", ef.u1, "").want(http.StatusOK), &page)
			if len(page.Items) != 1 || page.Items[0].Position != pos {
				t.Fatalf("newest checkpoint %+v, want the one stored at %d", page.Items, pos)
			}
			if tc.name == "signed by another key" && verifyCheckpoint(t, ef.pub(), page.Items[0]) == nil {
				t.Error("a checkpoint signed by another key verifies with the service's")
			}
			// No proof against it is handed out: app.Evidence.Proof checks
			// a proof before returning it, and refuses with 409 chain-broken.
			r := ef.do("GET", "/v1/events/"+first.ID+"/proof", ef.u1, "")
			if r.code != http.StatusConflict {
				t.Errorf("proof against a checkpoint that does not verify: %s, want 409", r)
			}
			if p, err := r.problemErr(); err != nil || !strings.HasSuffix(p.Type, "#chain-broken") {
				t.Errorf("%s: %+v, %v; want a chain-broken problem", r, p, err)
			}
		})
	}
}

// GET /v1/events/{id}/proof: a proof that verifies, with the domain's
// verifier and from its JSON alone, for the event's user or an admin.
func TestEventProof(t *testing.T) {
	ef := newEvidenceFixture(t)
	// Several users, so that the tree has a real audit path; user 1's
	// first event has later changes of the user to fold.
	e1 := ef.create(ef.u1, `{"action":"upload_file","metadata":{"name":"a.txt","size":3}}`)
	for u := 2; u <= 6; u++ {
		ef.create(ef.admin, fmt.Sprintf(`{"action":"login","user_id":%d}`, u))
	}
	ef.do("PATCH", "/v1/events/"+e1.ID, ef.u1, `{"status":"IN_PROGRESS"}`).want(http.StatusOK)
	e2 := ef.create(ef.u1, `{"action":"login"}`)
	e3 := ef.create(ef.u2, `{"action":"viewed"}`)
	cp1 := ef.sign(http.StatusCreated).Checkpoint
	late := ef.create(ef.u1, `{"action":"logout"}`) // after the checkpoint

	proof := func(path, token string) (proofJSON, domain.Proof) {
		ef.t.Helper()
		r := ef.do("GET", path, token, "").want(http.StatusOK)
		var pj proofJSON
		decodeStrict(r, &pj)
		var p domain.Proof
		if err := json.Unmarshal(r.body, &p); err != nil {
			ef.t.Fatalf("%s: %v", r, err)
		}
		return pj, p
	}
	check := func(t *testing.T, ev eventDoc, pj proofJSON, p domain.Proof, cp checkpointJSON) {
		t.Helper()
		if err := p.Verify(ef.pub()); err != nil {
			t.Errorf("domain.Proof.Verify: %v", err)
		}
		if err := verifyProofJSON(t, ef.pub(), pj); err != nil {
			t.Errorf("recomputed from the JSON: %v", err)
		}
		e := pj.Entry
		if e.Kind != "event.recorded" || e.EventID != ev.ID || e.UserID != ev.UserID || e.Action != ev.Action ||
			e.Status != "PENDING" || e.OccurredAt != ev.OccurredAt || e.RecordedAt != ev.RecordedAt {
			t.Errorf("entry %+v is not the recording of %+v", e, ev)
		}
		if pj.Checkpoint != cp {
			t.Errorf("checkpoint %+v, want %+v", pj.Checkpoint, cp)
		}
		if pj.Following == nil || pj.Path == nil {
			t.Errorf("following %v, path %v: want arrays", pj.Following, pj.Path)
		}
		// A verifier that accepts anything proves nothing: a changed
		// entry or path must fail both.
		bad := pj
		bad.Entry.Action = "deleted"
		if verifyProofJSON(t, ef.pub(), bad) == nil {
			t.Error("a proof with a changed action verifies")
		}
		badP := p
		badP.Entry.Action = "deleted"
		if badP.Verify(ef.pub()) == nil {
			t.Error("domain: a proof with a changed action verifies")
		}
		if len(pj.Path) > 0 {
			bad = pj
			bad.Path = append([]string{}, pj.Path...)
			bad.Path[0] = strings.Repeat("0", 64)
			if verifyProofJSON(t, ef.pub(), bad) == nil {
				t.Error("a proof with a changed path verifies")
			}
		}
	}

	for _, tc := range []struct {
		name, token string
		ev          eventDoc
		query       string
		following   int // later changes of the user up to the checkpoint
	}{
		{"owner, with later changes", ef.u1, e1, "", 2}, // its status change, e2
		{"owner, the head itself", ef.u1, e2, "", 0},
		{"owner, read-only", ef.u1ro, e2, "", 0},
		{"admin", ef.admin, e1, "", 2},
		{"another user's own", ef.u2, e3, "", 0},
		{"the checkpoint named", ef.u1, e1, fmt.Sprintf("?checkpoint=%d", cp1.Position), 2},
		{"checkpoint 0: the newest", ef.u1, e1, "?checkpoint=0", 2},
		{"checkpoint empty: the newest", ef.u1, e1, "?checkpoint=", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			pj, p := proof("/v1/events/"+tc.ev.ID+"/proof"+tc.query, tc.token)
			check(t, tc.ev, pj, p, cp1)
			if len(pj.Following) != tc.following {
				t.Errorf("%d following, want %d", len(pj.Following), tc.following)
			}
			if pj.Checkpoint.Users != 6 || len(pj.Path) == 0 {
				t.Errorf("%d users, path of %d: want 6 and a real path", pj.Checkpoint.Users, len(pj.Path))
			}
		})
	}

	ef.t = t
	for _, tc := range []struct {
		name, path, token string
		status            int
		blames, slug      string
	}{
		{name: "another user's event", path: "/v1/events/" + e1.ID + "/proof", token: ef.u2, status: 404},
		{name: "unknown event", path: "/v1/events/0199d3f0-8a4b-7c3e-9a1b-2f4e6d8c0a11/proof", token: ef.u1, status: 404},
		{name: "unknown event, admin", path: "/v1/events/0199d3f0-8a4b-7c3e-9a1b-2f4e6d8c0a11/proof", token: ef.admin, status: 404},
		{name: "not a UUID", path: "/v1/events/abc/proof", token: ef.u1, status: 404},
		{name: "the nil UUID", path: "/v1/events/00000000-0000-0000-0000-000000000000/proof", token: ef.admin, status: 404},
		{name: "newer than the checkpoint", path: "/v1/events/" + late.ID + "/proof", token: ef.u1, status: 409, slug: "not-checkpointed"},
		{name: "newer, another user's", path: "/v1/events/" + late.ID + "/proof", token: ef.u2, status: 404},
		{name: "checkpoint not a number", path: "/v1/events/" + e1.ID + "/proof?checkpoint=abc", token: ef.u1, status: 422, blames: "checkpoint"},
		{name: "checkpoint negative", path: "/v1/events/" + e1.ID + "/proof?checkpoint=-1", token: ef.u1, status: 422, blames: "checkpoint"},
		{name: "checkpoint that does not exist", path: fmt.Sprintf("/v1/events/%s/proof?checkpoint=%d", e1.ID, cp1.Position+1000), token: ef.u1, status: 404},
		{name: "checkpoint below every one", path: fmt.Sprintf("/v1/events/%s/proof?checkpoint=%d", e1.ID, cp1.Position-1), token: ef.u1, status: 404},
		{name: "checkpoint at the largest position", path: "/v1/events/" + e1.ID + "/proof?checkpoint=9223372036854775807", token: ef.u1, status: 404},
		{name: "checkpoint beyond int64", path: "/v1/events/" + e1.ID + "/proof?checkpoint=9223372036854775808", token: ef.u1, status: 422, blames: "checkpoint"},
		{name: "unknown parameter", path: "/v1/events/" + e1.ID + "/proof?at=1", token: ef.u1, status: 400, blames: "at"},
		{name: "checkpoint twice", path: "/v1/events/" + e1.ID + "/proof?checkpoint=1&checkpoint=2", token: ef.u1, status: 400, blames: "checkpoint"},
		{name: "write-only", path: "/v1/events/" + e1.ID + "/proof", token: ef.u1wo, status: 403},
		{name: "no credentials", path: "/v1/events/" + e1.ID + "/proof", status: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ef.t = t
			p := ef.do("GET", tc.path, tc.token, "").problem(tc.status)
			if tc.blames != "" && !p.blames(tc.blames) {
				t.Errorf("problem blames %q, want %q", p.fields(), tc.blames)
			}
			if tc.slug != "" && !strings.HasSuffix(p.Type, "#"+tc.slug) {
				t.Errorf("problem type %q, want #%s", p.Type, tc.slug)
			}
		})
	}

	// After an erasure and a new checkpoint, the late event is provable,
	// and so is the erased one, against either checkpoint: the link
	// covers the metadata's digest as recorded.
	ef.t = t
	ef.do("POST", "/v1/users/1/erasure", ef.admin, "").want(http.StatusOK)
	cp2 := ef.sign(http.StatusCreated).Checkpoint
	pj, p := proof("/v1/events/"+late.ID+"/proof", ef.u1)
	check(t, late, pj, p, cp2)
	pj, p = proof("/v1/events/"+e1.ID+"/proof", ef.u1)
	check(t, e1, pj, p, cp2)
	if len(pj.Following) != 4 { // status change, e2, late, the erasure
		t.Errorf("%d following, want 4", len(pj.Following))
	}
	if want := sum([]byte("activityd/metadata/v1\x00"), e1.Metadata); pj.Entry.Digest != hex.EncodeToString(want[:]) {
		t.Errorf("digest %s is not that of the metadata as recorded, %s", pj.Entry.Digest, e1.Metadata)
	}
	pj, p = proof(fmt.Sprintf("/v1/events/%s/proof?checkpoint=%d", e1.ID, cp1.Position), ef.u1)
	check(t, e1, pj, p, cp1)
}

// No input makes an evidence route answer 500, and every error is a
// problem document (fixture.serve also checks each answer against the
// OpenAPI document).
func TestEvidenceNo500(t *testing.T) {
	ef := newEvidenceFixture(t)
	ef.skipRequestCheck = true
	e := ef.create(ef.u1, `{"action":"login"}`)
	ef.sign(http.StatusCreated)
	ids := []string{e.ID, strings.ToUpper(e.ID), "abc", "%00", "..", "0199d3f0-8a4b-7c3e-9a1b-2f4e6d8c0a1", strings.Repeat("f", 300)}
	users := []string{"1", "2", "0", "-1", "x", "1e3", "%20", "9223372036854775807", "99999999999999999999"}
	queries := []string{"", "?", "?checkpoint=", "?checkpoint=x", "?checkpoint=1.5", "?checkpoint=%ff", "?limit=%00",
		"?before=-9223372036854775808", "?before=9223372036854775807&limit=100", "?limit=1e2", "?a=b", "?%zz"}
	bodies := []string{"", "{}", "null", `{"a":1}`, "\xff"}
	var paths []string
	for _, q := range queries {
		paths = append(paths, "/v1/checkpoints"+q, httpapi.CheckpointKeyPath+q)
		for _, id := range ids {
			paths = append(paths, "/v1/events/"+id+"/proof"+q)
		}
		for _, u := range users {
			paths = append(paths, "/v1/users/"+u+"/integrity"+q)
		}
	}
	n := 0
	for _, tok := range []string{"", "adt_nope", ef.u1, ef.u2, ef.u1wo, ef.admin} {
		for _, path := range paths {
			for _, method := range []string{"GET", "HEAD", "POST", "DELETE"} {
				for _, body := range bodies {
					if body != "" && method != "POST" {
						continue
					}
					r := ef.do(method, path, tok, body)
					n++
					if r.code >= 500 {
						t.Errorf("%s", r)
					}
					if r.code >= 400 && method != "HEAD" {
						if _, err := r.problemErr(); err != nil {
							t.Errorf("%s: %v", r, err)
						}
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Errorf("only %d requests", n)
	}
}
