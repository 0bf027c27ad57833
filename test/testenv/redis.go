package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when TEST_REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisBaseURL is TEST_REDIS_URL or DefaultRedisURL. It names one server
// (redis:// or rediss://, with an optional /db).
func RedisBaseURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultRedisURL
}

var (
	redisOnce sync.Once
	redisErr  error
)

// NeedRedis skips t when Redis at TEST_REDIS_URL does not answer, or fails
// it where CI is set.
func NeedRedis(t testing.TB) {
	t.Helper()
	redisOnce.Do(func() {
		c, err := redisClient(RedisBaseURL())
		if err != nil {
			redisErr = err
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		redisErr = c.Ping(ctx).Err()
	})
	unreachable(t, "Redis at TEST_REDIS_URL", redisErr)
}

func redisClient(url string) (*redis.Client, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("TEST_REDIS_URL: %w", err)
	}
	o.DialTimeout = 2 * time.Second
	o.MaxRetries = 1
	return redis.NewClient(o), nil
}

// RedisURL returns TEST_REDIS_URL and a key prefix of its own for t
// ("test:<random>:"), so that runs and tests sharing one server never see
// each other's keys. When t ends, every key under the prefix is deleted.
func RedisURL(t testing.TB) (url, prefix string) {
	t.Helper()
	NeedRedis(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix = "test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		c, err := redisClient(RedisBaseURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := deletePrefix(ctx, c, prefix); err != nil {
			t.Errorf("delete Redis keys %s*: %v", prefix, err)
		}
	})
	return RedisBaseURL(), prefix
}

// deletePrefix deletes every key that starts with prefix (which holds no
// glob characters), with SCAN and UNLINK.
func deletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}

// redisServer is a private redis-server started by StartRedis.
type redisServer struct {
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd  // nil while stopped
	exited chan error // cmd.Wait's result
	n      int        // starts so far, names the log files
}

// StartRedis starts a private redis-server on a free local port, without
// persistence and with DEBUG allowed from local clients (DEBUG SLEEP makes
// a slow server), for tests of outages: stop kills it (SIGKILL, like a
// crash), restart starts it again, empty, on the same port. Both wait until
// the server is gone or answers. The server is killed when t ends. Skips t
// when redis-server is not installed (TEST_REDIS_SERVER may name the
// binary), or fails it where CI is set.
func StartRedis(t testing.TB) (addr string, stop, restart func()) {
	t.Helper()
	bin := os.Getenv("TEST_REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	unreachable(t, "the redis-server binary (TEST_REDIS_SERVER)", err)
	s := &redisServer{bin: path, dir: t.TempDir()}
	var lastErr error
	for range 5 { // the free port may be taken before the server binds it
		if s.port, err = freePort(); err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start redis-server: %v", lastErr)
	}
	t.Cleanup(s.stop)
	restart = func() {
		t.Helper()
		if err := s.start(); err != nil {
			t.Fatalf("restart redis-server on port %d: %v", s.port, err)
		}
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), s.stop, restart
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts the server unless it runs, and waits until it answers PING.
func (s *redisServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	s.n++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.n))
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
		"--enable-debug-command", "local",
	)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	c := redis.NewClient(&redis.Options{
		Addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		DialTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server exited (%v): %s", err, log)
		default:
		}
		// INFO rather than PING: the answer must come from this process,
		// not from another server that took the port first.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			if strings.Contains(info, "process_id:"+strconv.Itoa(cmd.Process.Pid)+"\r\n") {
				break
			}
			err = errors.New("another server answers on the port")
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d does not answer: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = cmd
	s.exited = exited
	return nil
}

// stop kills the server, if it runs, and waits until it has exited.
func (s *redisServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}
