package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/predecessors"
	"github.com/activityd/activityd/test/testenv"
)

// djangoLog is a log as the Django service's clients read it: the id is a
// JSON number, as DRF rendered an AutoField.
type djangoLog struct {
	ID        json.Number     `json:"id"`
	User      int64           `json:"user"`
	Action    string          `json:"action"`
	Timestamp string          `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Status    string          `json:"status"`
}

// django sends one request as a Django REST Framework client did: its
// own token in "Authorization: Token", a JSON or form body.
func django(t *testing.T, method, url, token, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+token)
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

func decodeLog(t *testing.T, what string, raw []byte) djangoLog {
	t.Helper()
	var l djangoLog
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&l); err != nil {
		t.Fatalf("%s: %v: %s", what, err, raw)
	}
	if _, err := l.ID.Int64(); err != nil {
		t.Fatalf("%s: id %q is not an integer: %s", what, l.ID, raw)
	}
	return l
}

// TestMigrateActivityLogger is the Django service's flow after a
// migration: a store filled only by `activityd import activity-logger`
// from the old database (SQLite, as Django's default), then a client
// written as the old clients were — its own DRF token, integer ids, JSON
// and form bodies — lists its history, creates, and PATCHes by integer
// id, both an imported log and a new one.
func TestMigrateActivityLogger(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T, dir string) string
	}{
		{"sqlite", func(t *testing.T, dir string) string { return "sqlite:" + filepath.Join(dir, "activity.db") }},
		{"postgres", func(t *testing.T, _ string) string { u, _ := testenv.PostgresSchema(t); return u }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			old := predecessors.ManyLogs(15) // ids 1, 3, …, 29; users 1 to 5; PENDING, IN_PROGRESS, DONE in turn
			tokens := predecessors.AwkwardTokens()
			src := filepath.Join(dir, "db.sqlite3")
			predecessors.ActivityLoggerSQLite(t, src, old, tokens)
			env := []string{"DATABASE_URL=" + tc.store(t, dir)}
			out, errOut, code := binary.Run(t, dir, env, "import", "activity-logger", "sqlite:"+src)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "imported", len(old))) ||
				!strings.Contains(out, "3 imported, 0 already present, 0 refused") {
				t.Fatalf("activityd import: exit %d\n%s%s", code, out, errOut)
			}
			p := binary.Start(t, dir, env...)
			key := tokens[0].Key // user 1's DRF token, as the client holds it

			// The client's history, with the ids it stored.
			st, raw := django(t, "GET", p.Base+"/api/logs/1/", key, "", "")
			var history []djangoLog
			d := json.NewDecoder(strings.NewReader(string(raw)))
			d.UseNumber()
			if err := d.Decode(&history); st != 200 || err != nil {
				t.Fatalf("GET /api/logs/1/: %d %s (%v)", st, raw, err)
			}
			var want []predecessors.LogRow
			for _, l := range old {
				if l.UserID == 1 {
					want = append(want, l)
				}
			}
			if len(history) != len(want) {
				t.Fatalf("GET /api/logs/1/: %d logs, want %d: %s", len(history), len(want), raw)
			}
			var pending string
			for i, l := range history {
				w := want[i]
				if l.ID.String() != fmt.Sprint(w.ID) || l.User != 1 || l.Action != strings.ToUpper(w.Action) ||
					l.Status != w.Status || l.Timestamp != w.Want.Format(time.RFC3339Nano) ||
					string(l.Metadata) != fmt.Sprintf(`{"n":%d}`, 5*i) {
					t.Errorf("log %d: %+v (metadata %s), want %+v", i, l, l.Metadata, w)
				}
				if l.Status == "PENDING" && pending == "" {
					pending = l.ID.String()
				}
			}
			if pending == "" {
				t.Fatal("no imported PENDING log of user 1 to advance")
			}

			// PATCH an imported log by the integer id the client stored.
			st, raw = django(t, "PATCH", p.Base+"/api/logs/update/"+pending+"/", key, "application/json", `{"status": "IN_PROGRESS"}`)
			if l := decodeLog(t, "PATCH imported", raw); st != 200 || l.ID.String() != pending || l.Status != "IN_PROGRESS" {
				t.Fatalf("PATCH /api/logs/update/%s/: %d %s", pending, st, raw)
			}

			// Create, as JSON and as a form (DRF's FormParser): integer ids
			// above every imported one.
			st, raw = django(t, "POST", p.Base+"/api/logs/", key, "application/json",
				`{"action": "LOGIN", "metadata": {"ip": "192.168.0.1", "device": "Chrome"}}`)
			created := decodeLog(t, "POST JSON", raw)
			if n, _ := created.ID.Int64(); st != 201 || n <= 29 || created.User != 1 || created.Status != "PENDING" || created.Action != "LOGIN" {
				t.Fatalf("POST /api/logs/: %d %s", st, raw)
			}
			form := url.Values{"action": {"upload_file"}, "metadata": {`{"file": "report.pdf"}`}}.Encode()
			st, raw = django(t, "POST", p.Base+"/api/logs/", key, "application/x-www-form-urlencoded", form)
			fromForm := decodeLog(t, "POST form", raw)
			if n, _ := fromForm.ID.Int64(); st != 201 || n <= 29 || fromForm.ID == created.ID || fromForm.Action != "UPLOAD_FILE" {
				t.Fatalf("POST /api/logs/ (form): %d %s", st, raw)
			}

			// PATCH the new log by its integer id, through the workflow.
			for _, s := range []string{"IN_PROGRESS", "DONE"} {
				st, raw = django(t, "PATCH", p.Base+"/api/logs/update/"+created.ID.String()+"/", key, "application/json", `{"status": "`+s+`"}`)
				if l := decodeLog(t, "PATCH new", raw); st != 200 || l.ID != created.ID || l.Status != s {
					t.Fatalf("PATCH %s to %s: %d %s", created.ID, s, st, raw)
				}
			}
			st, raw = django(t, "PATCH", p.Base+"/api/logs/update/"+created.ID.String()+"/", key, "application/json", `{"status": "PENDING"}`)
			if st != 400 || !strings.Contains(string(raw), "Invalid status transition: DONE -> PENDING") {
				t.Fatalf("PATCH DONE -> PENDING: %d %s", st, raw)
			}

			// Another user's log stays out of reach of this token.
			if st, raw = django(t, "PATCH", p.Base+"/api/logs/update/3/", key, "application/json", `{"status": "IN_PROGRESS"}`); st != 404 {
				t.Fatalf("PATCH user 2's log 3 with user 1's token: %d %s", st, raw)
			}
			// A secret that was never the old service's is refused.
			if st, _ = django(t, "GET", p.Base+"/api/logs/1/", strings.Repeat("f", 40), "", ""); st != 401 {
				t.Fatalf("an unknown DRF token: %d", st)
			}

			st, raw = django(t, "GET", p.Base+"/api/logs/1/", key, "", "")
			if st != 200 || strings.Count(string(raw), `"user":1`) != len(want)+2 {
				t.Fatalf("GET after: %d %s", st, raw)
			}

			// A second import after the switch brings nothing twice and
			// leaves what the clients changed alone.
			out, errOut, code = binary.Run(t, dir, env, "import", "activity-logger", "sqlite:"+src)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "already present", len(old))) {
				t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
			}
			if st, raw = django(t, "PATCH", p.Base+"/api/logs/update/"+pending+"/", key, "application/json", `{"status": "DONE"}`); st != 200 {
				t.Fatalf("the imported log after a second import: %d %s", st, raw)
			}
		})
	}
}
