package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/activityd/activityd/test/binary"
)

// TestHeaderLimit: a header block over 64 KiB is refused with 431 before
// any handler runs; one under it is served.
func TestHeaderLimit(t *testing.T) {
	p := binary.Serve.Start(t, t.TempDir(), "DATABASE_URL=memory:")
	for _, tc := range []struct {
		size int
		want int
	}{
		{8 << 10, 200},
		{100 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, err := http.NewRequest("GET", p.Base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Padding", strings.Repeat("a", tc.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d-byte header: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte header: %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}
