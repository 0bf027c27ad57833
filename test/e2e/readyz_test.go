package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"sync"
	"testing"

	_ "github.com/lib/pq"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// TestReadyzUnderTerminatedConnections: every pooled PostgreSQL connection
// of the real binary is terminated (pg_terminate_backend), again and
// again; /readyz must never answer 503 while the server can serve — each
// dead connection is replaced before the probe says anything — and the
// API keeps answering. Issue 13 saw 16 consecutive 503s, one per dead
// connection, which would take every replica out of a load balancer.
func TestReadyzUnderTerminatedConnections(t *testing.T) {
	base, _ := testenv.PostgresSchema(t)
	const app = "activityd-readyz-test" // only this test's connections are terminated
	url := testenv.WithParam(base, "application_name", app)
	const admin = "readyz-admin-token-0123456789abcdef"
	env := []string{"DATABASE_URL=" + url, "BOOTSTRAP_ADMIN_TOKEN=" + admin, "CACHE_TTL=0"}
	p := binary.Start(t, t.TempDir(), env...)
	db, err := sql.Open("postgres", testenv.PostgresBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	var terminated int
	for round := range 10 {
		// Fill the pool: concurrent reads and writes hold many connections.
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				r := binary.Call(t, "POST", p.Base+"/v1/events", admin, fmt.Sprintf(`{"user_id":%d,"action":"login"}`, 100+i))
				if r.Status != 201 {
					t.Errorf("round %d: create: %d %s", round, r.Status, r.Raw)
				}
			})
		}
		wg.Wait()
		var n int
		if err := db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		terminated += n
		for probe := range 20 {
			res, err := http.Get(p.Base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("round %d, probe %d after terminating %d connections: /readyz %d", round, probe, n, res.StatusCode)
			}
		}
		r := binary.Call(t, "GET", p.Base+"/v1/users/100/events", admin, "")
		binary.Want(t, r, 200)
	}
	if terminated < 20 {
		t.Fatalf("only %d connections were terminated in 10 rounds: the test did not exercise dead pooled connections", terminated)
	}
	t.Logf("%d connections terminated over 10 rounds; /readyz answered 200 to all 200 probes", terminated)
}
