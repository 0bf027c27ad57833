package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigPprof(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		wantAddr    string
		wantRemote  bool
		wantErrName string // the variable the error names; "" for none
	}{
		{name: "unset: off", env: nil, wantAddr: ""},
		{name: "loopback v4", env: map[string]string{"PPROF_ADDR": "127.0.0.1:6060"}, wantAddr: "127.0.0.1:6060"},
		{name: "loopback v4, all of 127/8", env: map[string]string{"PPROF_ADDR": "127.1.2.3:6060"}, wantAddr: "127.1.2.3:6060"},
		{name: "loopback v6", env: map[string]string{"PPROF_ADDR": "[::1]:6060"}, wantAddr: "[::1]:6060"},
		{name: "localhost", env: map[string]string{"PPROF_ADDR": "localhost:6060"}, wantAddr: "localhost:6060"},
		{name: "loopback, any free port", env: map[string]string{"PPROF_ADDR": "127.0.0.1:0", "HTTP_ADDR": "127.0.0.1:0"}, wantAddr: "127.0.0.1:0"},
		{name: "loopback with PPROF_ALLOW_REMOTE=false", env: map[string]string{"PPROF_ADDR": "127.0.0.1:6060", "PPROF_ALLOW_REMOTE": "false"}, wantAddr: "127.0.0.1:6060"},

		{name: "empty host refused", env: map[string]string{"PPROF_ADDR": ":6060"}, wantErrName: "PPROF_ADDR"},
		{name: "bare port refused (it means :6060)", env: map[string]string{"PPROF_ADDR": "6060"}, wantErrName: "PPROF_ADDR"},
		{name: "0.0.0.0 refused", env: map[string]string{"PPROF_ADDR": "0.0.0.0:6060"}, wantErrName: "PPROF_ADDR"},
		{name: ":: refused", env: map[string]string{"PPROF_ADDR": "[::]:6060"}, wantErrName: "PPROF_ADDR"},
		{name: "private IP refused", env: map[string]string{"PPROF_ADDR": "10.1.2.3:6060"}, wantErrName: "PPROF_ADDR"},
		{name: "a host name refused", env: map[string]string{"PPROF_ADDR": "db.internal:6060"}, wantErrName: "PPROF_ADDR"},
		{name: "PPROF_ALLOW_REMOTE other than true refused", env: map[string]string{"PPROF_ADDR": ":6060", "PPROF_ALLOW_REMOTE": "false"}, wantErrName: "PPROF_ADDR"},

		{name: "empty host with PPROF_ALLOW_REMOTE", env: map[string]string{"PPROF_ADDR": ":6060", "PPROF_ALLOW_REMOTE": "true"}, wantAddr: ":6060", wantRemote: true},
		{name: "0.0.0.0 with PPROF_ALLOW_REMOTE", env: map[string]string{"PPROF_ADDR": "0.0.0.0:6060", "PPROF_ALLOW_REMOTE": "true"}, wantAddr: "0.0.0.0:6060", wantRemote: true},
		{name: "private IP with PPROF_ALLOW_REMOTE", env: map[string]string{"PPROF_ADDR": "10.1.2.3:6060", "PPROF_ALLOW_REMOTE": "TRUE"}, wantAddr: "10.1.2.3:6060", wantRemote: true},
		{name: "PPROF_ALLOW_REMOTE alone changes nothing", env: map[string]string{"PPROF_ALLOW_REMOTE": "true"}, wantAddr: "", wantRemote: true},

		{name: "malformed: no port", env: map[string]string{"PPROF_ADDR": "127.0.0.1"}, wantErrName: "PPROF_ADDR"},
		{name: "malformed: a word", env: map[string]string{"PPROF_ADDR": "pprof"}, wantErrName: "PPROF_ADDR"},
		{name: "malformed: two ports", env: map[string]string{"PPROF_ADDR": "localhost:80:90"}, wantErrName: "PPROF_ADDR"},
		{name: "malformed: unclosed bracket", env: map[string]string{"PPROF_ADDR": "[::1:6060"}, wantErrName: "PPROF_ADDR"},
		{name: "malformed, even with PPROF_ALLOW_REMOTE", env: map[string]string{"PPROF_ADDR": "pprof", "PPROF_ALLOW_REMOTE": "true"}, wantErrName: "PPROF_ADDR"},
		{name: "PPROF_ALLOW_REMOTE not a boolean", env: map[string]string{"PPROF_ADDR": ":6060", "PPROF_ALLOW_REMOTE": "yes"}, wantErrName: "PPROF_ALLOW_REMOTE"},

		{name: "the API port refused", env: map[string]string{"PPROF_ADDR": "127.0.0.1:8080", "HTTP_ADDR": "127.0.0.1:8080"}, wantErrName: "PPROF_ADDR"},
		{name: "the metrics port refused", env: map[string]string{"PPROF_ADDR": "127.0.0.1:9090", "METRICS_ADDR": "127.0.0.1:9090"}, wantErrName: "PPROF_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tc.env))
			if tc.wantErrName != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrName+"=") {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErrName)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.PprofAddr != tc.wantAddr || c.PprofAllowRemote != tc.wantRemote {
				t.Fatalf("PprofAddr %q, PprofAllowRemote %v; want %q, %v", c.PprofAddr, c.PprofAllowRemote, tc.wantAddr, tc.wantRemote)
			}
		})
	}
}

// TestLoadConfigPprofRefusalSaysWhy: the refusal of a non-loopback address
// says what to do about it.
func TestLoadConfigPprofRefusalSaysWhy(t *testing.T) {
	_, err := loadConfig(envOf(map[string]string{"PPROF_ADDR": "0.0.0.0:6060"}))
	if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "PPROF_ALLOW_REMOTE=true") {
		t.Fatalf("err = %v, want one naming loopback and PPROF_ALLOW_REMOTE=true", err)
	}
}

// TestPprofHandler: every pprof endpoint answers on the profiler's own
// mux, and nothing else does.
func TestPprofHandler(t *testing.T) {
	srv := httptest.NewServer(pprofHandler())
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status int
		want   string // in the body; "" for a binary one
	}{
		{"/debug/pprof/", 200, "Types of profiles available"},
		{"/debug/pprof/cmdline", 200, ""},
		{"/debug/pprof/symbol", 200, "num_symbols"},
		{"/debug/pprof/heap?debug=1", 200, "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile:"},
		{"/debug/pprof/allocs?debug=1", 200, "heap profile:"},
		{"/debug/pprof/threadcreate?debug=1", 200, "threadcreate profile:"},
		{"/debug/pprof/block?debug=1", 200, ""},
		{"/debug/pprof/mutex?debug=1", 200, ""},
		{"/debug/pprof/profile?seconds=1", 200, ""},
		{"/debug/pprof/trace?seconds=1", 200, ""},
		{"/debug/pprof/nosuchprofile", 404, "Unknown profile"},
		{"/", 404, ""},
		{"/metrics", 404, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !bytes.Contains(body, []byte(tc.want)) {
				t.Fatalf("GET %s: %d, want %d with %q; body:\n%.500s", tc.path, res.StatusCode, tc.status, tc.want, body)
			}
			if tc.status == 200 && len(body) == 0 {
				t.Fatalf("GET %s: empty body", tc.path)
			}
		})
	}
}

// TestServePprof: PPROF_ADDR gets a listener that logs its address, warns
// when it is not loopback, serves the profiler and is gone once stopped.
func TestServePprof(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      config
		wantWarn bool
	}{
		{"loopback", config{PprofAddr: "127.0.0.1:0"}, false},
		{"loopback with PPROF_ALLOW_REMOTE", config{PprofAddr: "127.0.0.1:0", PprofAllowRemote: true}, false},
		{"every interface with PPROF_ALLOW_REMOTE", config{PprofAddr: ":0", PprofAllowRemote: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			stop, err := servePprof(tc.cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			var addr string
			var warned bool
			for line := range strings.Lines(logs.String()) {
				var rec struct{ Level, Msg, Addr string }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Msg == "serving pprof" {
					addr = rec.Addr
				}
				if rec.Level == "WARN" && strings.Contains(rec.Msg, "PPROF_ALLOW_REMOTE") {
					warned = true
				}
			}
			if addr == "" || warned != tc.wantWarn {
				stop()
				t.Fatalf("listen address %q, warned %v (want %v); logs:\n%s", addr, warned, tc.wantWarn, logs.String())
			}
			_, port, _ := net.SplitHostPort(addr)
			url := "http://127.0.0.1:" + port + "/debug/pprof/"
			res, err := http.Get(url)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !bytes.Contains(body, []byte("Types of profiles available")) {
				stop()
				t.Fatalf("GET %s: %d %.300s", url, res.StatusCode, body)
			}
			stop()
			c := http.Client{Timeout: 5 * time.Second}
			if res, err := c.Get(url); err == nil {
				res.Body.Close()
				t.Fatalf("GET %s after stop: %d, want no listener", url, res.StatusCode)
			}
		})
	}
}

// TestServePprofOff: without PPROF_ADDR nothing listens and nothing is
// logged.
func TestServePprofOff(t *testing.T) {
	var logs bytes.Buffer
	stop, err := servePprof(config{PprofAllowRemote: true}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if logs.Len() != 0 {
		t.Fatalf("logged without PPROF_ADDR:\n%s", logs.String())
	}
}

// TestServePprofGuard: a non-loopback address without PPROF_ALLOW_REMOTE
// is refused even by a config that did not come through loadConfig.
func TestServePprofGuard(t *testing.T) {
	stop, err := servePprof(config{PprofAddr: ":0"}, slog.New(slog.DiscardHandler))
	if err == nil {
		stop()
		t.Fatal("servePprof listened on :0 without PPROF_ALLOW_REMOTE")
	}
	if !strings.Contains(err.Error(), "PPROF_ADDR") {
		t.Fatalf("err = %v, want one naming PPROF_ADDR", err)
	}
}
