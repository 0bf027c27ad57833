package rediscache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/test/testenv"
)

// TestWatchInstance: the watcher hears the server's run_id on the first
// connection and a different one after a restart, before any call is
// served on the new connection; when it refuses, calls fail.
func TestWatchInstance(t *testing.T) {
	addr, stop, restart := testenv.StartRedis(t)
	c, err := Open("redis://"+addr+"/0", Options{KeyPrefix: "t:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		mu     sync.Mutex
		seen   []string
		refuse bool
	)
	c.WatchInstance(func(_ context.Context, id string) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, id)
		if refuse {
			return errors.New("refused by the watcher")
		}
		return nil
	})
	ids := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }

	if err := c.Set(t.Context(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	first := ids()
	if len(first) == 0 || len(first[0]) != 40 {
		t.Fatalf("after the first call the watcher heard %q, want one 40-character run_id", first)
	}

	stop()
	restart()
	deadline := time.Now().Add(10 * time.Second)
	for c.Set(t.Context(), "k", []byte("v"), time.Minute) != nil {
		if time.Now().After(deadline) {
			t.Fatal("calls still fail 10s after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := ids()
	if last := after[len(after)-1]; last == first[0] {
		t.Fatalf("after a restart the watcher heard %q again, want a new run_id", last)
	}

	mu.Lock()
	refuse = true
	mu.Unlock()
	stop()
	restart()
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Set(t.Context(), "k", []byte("v"), time.Minute); err == nil {
			t.Fatal("a call succeeded on a connection the watcher refused")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(ids()); n <= len(after) {
		t.Fatal("the watcher was not asked about the restarted server")
	}
}

func TestInfoField(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nrun_id:abc\r\n"
	for _, tc := range []struct{ name, want string }{
		{"run_id", "abc"}, {"redis_mode", "standalone"}, {"absent", ""}, {"run", ""},
	} {
		if got := infoField(info, tc.name); got != tc.want {
			t.Errorf("infoField(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
