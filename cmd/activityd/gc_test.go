package main

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // -1: an error
	}{
		{"150MiB", 150 << 20},
		{"150Mi", 150 << 20},
		{"2GiB", 2 << 30},
		{"1Gi", 1 << 30},
		{"64KiB", 64 << 10},
		{"1TiB", 1 << 40},
		{"1048576", 1 << 20},
		{"1048576B", 1 << 20},
		{"150 MiB", 150 << 20},
		{"150MB", -1}, // decimal units are not GOMEMLIMIT's
		{"150M", -1},
		{"1.5GiB", -1},
		{"-1MiB", -1},
		{"MiB", -1},
		{"lots", -1},
		{"99999999999TiB", -1},
	} {
		got, err := parseBytes(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseBytes(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestMemoryBudget: what MEMORY_LIMIT derives, per store; GOGC and
// GOMEMLIMIT set in the environment are left to the runtime.
func TestMemoryBudget(t *testing.T) {
	const mib = 1 << 20
	pg := "postgres://u@h/db"
	for _, tc := range []struct {
		name                         string
		env                          map[string]string
		limit, reserve, goLimit, gcs int64
	}{
		// SQLite with four readers: 40 MiB, and twice (16 + 4 x 2) MiB.
		{"defaults on SQLite", map[string]string{"DB_MAX_OPEN_CONNS": "4"}, 150 * mib, 88 * mib, 62 * mib, defaultGCPercent},
		{"defaults on PostgreSQL", map[string]string{"DATABASE_URL": pg}, 150 * mib, 40 * mib, 110 * mib, defaultGCPercent},
		{"memory store", map[string]string{"DATABASE_URL": "memory:"}, 150 * mib, 40 * mib, 110 * mib, defaultGCPercent},
		{"MEMORY_LIMIT on PostgreSQL", map[string]string{"DATABASE_URL": pg, "MEMORY_LIMIT": "512MiB"}, 512 * mib, 40 * mib, 472 * mib, defaultGCPercent},
		{"Kubernetes units, more readers", map[string]string{"MEMORY_LIMIT": "1Gi", "DB_MAX_OPEN_CONNS": "8"}, 1024 * mib, 104 * mib, 920 * mib, defaultGCPercent},
		{"GOMEMLIMIT wins", map[string]string{"DATABASE_URL": pg, "GOMEMLIMIT": "1GiB"}, 150 * mib, 40 * mib, -1, defaultGCPercent},
		{"GOGC wins", map[string]string{"DATABASE_URL": pg, "GOGC": "100"}, 150 * mib, 40 * mib, 110 * mib, -1},
		// 64 readers: 40 MiB and twice (16 + 64 x 2) MiB; the default grows.
		{"default grown for many SQLite readers", map[string]string{"DB_MAX_OPEN_CONNS": "64"}, 360 * mib, 328 * mib, 32 * mib, defaultGCPercent},
		{"the smallest on PostgreSQL", map[string]string{"DATABASE_URL": pg, "MEMORY_LIMIT": "72MiB"}, 72 * mib, 40 * mib, 32 * mib, defaultGCPercent},
	} {
		c, err := loadConfig(envOf(tc.env))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		m := c.Memory
		if m.Limit != tc.limit || m.Reserve != tc.reserve || m.GoLimit != tc.goLimit || int64(m.GCPercent) != tc.gcs {
			t.Errorf("%s: %+v; want limit %d MiB, reserve %d MiB, Go limit %d MiB, GOGC %d",
				tc.name, m, tc.limit/mib, tc.reserve/mib, tc.goLimit/mib, tc.gcs)
		}
		// The cache takes a third of Go's share, whoever sets Go's limit.
		if want := (tc.limit - tc.reserve) / 3; m.CacheBytes != want || inProcessCacheBytes(c) != want {
			t.Errorf("%s: cache bytes %d (wired %d), want a third of %d", tc.name, m.CacheBytes, inProcessCacheBytes(c), tc.limit-tc.reserve)
		}
	}
}

func TestMemoryLimitRejectsBadValuesNamingTheVariable(t *testing.T) {
	for _, env := range []map[string]string{
		{"MEMORY_LIMIT": "lots"},
		{"MEMORY_LIMIT": "150MB"},
		{"MEMORY_LIMIT": "2TiB"},
		{"MEMORY_LIMIT": "0"},
		{"MEMORY_LIMIT": "100MiB", "DB_MAX_OPEN_CONNS": "4"}, // SQLite keeps 88 MiB outside Go's heap
		{"MEMORY_LIMIT": "64MiB", "DATABASE_URL": "postgres://u@h/db"},
	} {
		_, err := loadConfig(envOf(env))
		if err == nil || !strings.Contains(err.Error(), "MEMORY_LIMIT=") {
			t.Errorf("%v: error %v, want one naming MEMORY_LIMIT", env, err)
		}
	}
}

// TestTuneMemory: the budget reaches the runtime, and the log says what
// was derived.
func TestTuneMemory(t *testing.T) {
	prevLimit, prevGC := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(prevGC)
	t.Cleanup(func() { debug.SetMemoryLimit(prevLimit); debug.SetGCPercent(prevGC) })

	c, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://u@h/db", "MEMORY_LIMIT": "1GiB"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tuneMemory(c.Memory, slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelInfo)
	if got := debug.SetMemoryLimit(-1); got != 984<<20 {
		t.Errorf("memory limit %d, want 984 MiB", got)
	}
	if got := debug.SetGCPercent(prevGC); got != defaultGCPercent {
		t.Errorf("GOGC %d, want %d", got, defaultGCPercent)
	}
	for _, want := range []string{"memory limits derived from MEMORY_LIMIT", "memory_limit=1024MiB", "go_memory_limit=984MiB",
		"gogc=400", "cache_bytes=328MiB", "outside_go_heap=40MiB"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}
