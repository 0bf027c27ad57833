package main

import (
	"strings"
	"testing"
	"time"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.DatabaseURL != "sqlite:./data/activity.db" || c.AuthMode != "token" ||
		c.MaxBodyBytes != 1<<20 || c.Limits.MaxMetadataBytes != 16<<10 || c.Limits.MaxClockSkew != 5*time.Minute ||
		c.Limits.Actions.Any() || c.LogLevel != "info" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadConfigValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(config) bool
	}{
		{"HTTP_PORT accepted", map[string]string{"HTTP_PORT": "9090"}, func(c config) bool { return c.HTTPAddr == ":9090" }},
		{"HTTP_ADDR wins over HTTP_PORT", map[string]string{"HTTP_ADDR": "127.0.0.1:7000", "HTTP_PORT": "9090"}, func(c config) bool { return c.HTTPAddr == "127.0.0.1:7000" }},
		{"METRICS_ADDR unset", nil, func(c config) bool { return c.MetricsAddr == "" }},
		{"METRICS_ADDR port", map[string]string{"METRICS_ADDR": "9464"}, func(c config) bool { return c.MetricsAddr == ":9464" }},
		{"METRICS_ADDR host:port", map[string]string{"METRICS_ADDR": "127.0.0.1:9464"}, func(c config) bool { return c.MetricsAddr == "127.0.0.1:9464" }},
		{"DB_URL accepted", map[string]string{"DB_URL": "memory:"}, func(c config) bool { return c.DatabaseURL == "memory:" }},
		{"DATABASE_URL wins", map[string]string{"DATABASE_URL": "sqlite:x.db", "DB_URL": "memory:"}, func(c config) bool { return c.DatabaseURL == "sqlite:x.db" }},
		{"ACTIONS=*", map[string]string{"ACTIONS": "*"}, func(c config) bool { return c.Limits.Actions.Any() }},
		{"ACTIONS list normalised", map[string]string{"ACTIONS": "Login, checkout"}, func(c config) bool {
			a := c.Limits.Actions.Actions()
			return len(a) == 2 && a[0] == "checkout" && a[1] == "login"
		}},
		{"RETENTION days", map[string]string{"RETENTION": "90d"}, func(c config) bool { return c.Retention == 90*24*time.Hour }},
		{"RETENTION duration", map[string]string{"RETENTION": "36h"}, func(c config) bool { return c.Retention == 36*time.Hour }},
		{"cache defaults", nil, func(c config) bool {
			return c.CacheTTL == time.Minute && c.RedisURL == "" && c.CacheTimeout == 50*time.Millisecond
		}},
		{"CACHE_TTL=0 disables", map[string]string{"CACHE_TTL": "0"}, func(c config) bool { return c.CacheTTL == 0 }},
		{"REDIS_URL cluster", map[string]string{"REDIS_URL": "redis://h1:6379,h2:6379"}, func(c config) bool { return c.RedisURL != "" }},
		{"jobs defaults", nil, func(c config) bool {
			return c.WorkerConcurrency == 4 && c.CountSettle == 0 && countSettle(c) == 15*time.Second
		}},
		{"COUNT_SETTLE overrides the derived settle", map[string]string{"COUNT_SETTLE": "2s", "DB_STATEMENT_TIMEOUT": "30s"}, func(c config) bool {
			return countSettle(c) == 2*time.Second
		}},
		{"settle derived from the database timeouts", map[string]string{"DB_STATEMENT_TIMEOUT": "30s", "DB_CONNECT_TIMEOUT": "5s"}, func(c config) bool {
			return countSettle(c) == 36*time.Second
		}},
		{"WORKER_CONCURRENCY", map[string]string{"WORKER_CONCURRENCY": "16"}, func(c config) bool { return c.WorkerConcurrency == 16 }},
		{"AUTH_MODE none", map[string]string{"AUTH_MODE": "NONE"}, func(c config) bool { return c.AuthMode == "none" }},
		{"limits", map[string]string{"MAX_CLOCK_SKEW": "1m", "MAX_METADATA_BYTES": "100", "MAX_BODY_BYTES": "2048"}, func(c config) bool {
			return c.Limits.MaxClockSkew == time.Minute && c.Limits.MaxMetadataBytes == 100 && c.MaxBodyBytes == 2048
		}},
		{"body budget default", nil, func(c config) bool { return c.BodyMemoryBudget == 16<<20 }},
		{"body budget follows a larger MAX_BODY_BYTES", map[string]string{"MAX_BODY_BYTES": "33554432"}, func(c config) bool {
			return c.BodyMemoryBudget == 32<<20
		}},
		{"BODY_MEMORY_BUDGET", map[string]string{"BODY_MEMORY_BUDGET": "4194304"}, func(c config) bool {
			return c.BodyMemoryBudget == 4<<20
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestLoadConfigRejectsBadValuesNamingTheVariable(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"HTTP_PORT", "eighty"},
		{"HTTP_PORT", "70000"},
		{"HTTP_ADDR", "localhost:80:90"},
		{"METRICS_ADDR", "metrics"},
		{"METRICS_ADDR", ":8080"}, // the API's own address
		{"LOG_FORMAT", "xml"},
		{"LOG_LEVEL", "loud"},
		{"AUTH_MODE", "maybe"},
		{"ACTIONS", "Bad Action!"},
		{"MAX_CLOCK_SKEW", "soon"},
		{"MAX_CLOCK_SKEW", "-1m"},
		{"MAX_METADATA_BYTES", "1"},
		{"MAX_METADATA_BYTES", "lots"},
		{"MAX_BODY_BYTES", "12"},
		{"BODY_MEMORY_BUDGET", "lots"},
		{"BODY_MEMORY_BUDGET", "65536"}, // below MAX_BODY_BYTES
		{"SHUTDOWN_TIMEOUT", "10"},
		{"DB_MAX_OPEN_CONNS", "-3"},
		{"JWT_SECRET", "short"},
		{"RETENTION", "ninety days"},
		{"CACHE_TTL", "13h"},
		{"CACHE_TIMEOUT", "fast"},
		{"REDIS_URL", "http://cache:6379"},
		{"RETENTION", "-5d"},
		{"JWT_JWKS_URL", "ftp://idp/keys"},
		{"JWT_LEEWAY", "a bit"},
		{"COUNT_SCHEDULE", "every four hours"},
		{"COUNT_SCHEDULE", "0 */4 * *"},
		{"COUNT_SCHEDULE", "0 0 */4 * * *"}, // six fields: seconds are not accepted
		{"COUNT_SCHEDULE", "61 * * * *"},
		{"COUNT_SCHEDULE", "@every 1h"},
		{"COUNT_SCHEDULE", "CRON_TZ=Europe/Paris 0 */4 * * *"},
		{"CRON_TAB_COUNT_USERS_EVENT_TASK", "@sometimes"},
		{"COUNT_MAX_CATCHUP", "0"},
		{"COUNT_MAX_CATCHUP", "many"},
		{"COUNT_SETTLE", "soon"},
		{"COUNT_SETTLE", "2h"},
		{"WORKER_CONCURRENCY", "0"},
		{"WORKER_CONCURRENCY", "lots"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := loadConfig(envOf(map[string]string{tc.name: tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("err = %v, want one naming %s", err, tc.name)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.1.2.3:80": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.com:80": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestLoadConfigCountSchedule(t *testing.T) {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		spec     string
		from     time.Time
		wantNext time.Time
	}{
		{"default: every four hours, UTC", nil, "0 */4 * * *", at("2025-10-10T17:30:00Z"), at("2025-10-10T20:00:00Z")},
		{"evaluated in UTC whatever the zone", nil, "0 */4 * * *", at("2025-10-10T17:30:00+02:00"), at("2025-10-10T16:00:00Z")},
		{"COUNT_SCHEDULE", map[string]string{"COUNT_SCHEDULE": "*/15 * * * *"}, "*/15 * * * *", at("2025-10-10T17:31:00Z"), at("2025-10-10T17:45:00Z")},
		{"the predecessor's variable", map[string]string{"CRON_TAB_COUNT_USERS_EVENT_TASK": "@hourly"}, "@hourly", at("2025-10-10T17:31:00Z"), at("2025-10-10T18:00:00Z")},
		{"COUNT_SCHEDULE wins", map[string]string{"COUNT_SCHEDULE": "@daily", "CRON_TAB_COUNT_USERS_EVENT_TASK": "@hourly"}, "@daily", at("2025-10-10T17:31:00Z"), at("2025-10-11T00:00:00Z")},
		{"weekdays", map[string]string{"COUNT_SCHEDULE": "0 0 * * MON-FRI"}, "0 0 * * MON-FRI", at("2025-10-10T17:31:00Z"), at("2025-10-13T00:00:00Z")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.CountSchedule != tc.spec || c.CountMaxCatchup != 42 {
				t.Fatalf("CountSchedule %q, CountMaxCatchup %d", c.CountSchedule, c.CountMaxCatchup)
			}
			if got := c.CountScheduleParsed.Next(tc.from); !got.Equal(tc.wantNext) {
				t.Fatalf("Next(%v) = %v, want %v", tc.from, got, tc.wantNext)
			}
		})
	}
	c, err := loadConfig(envOf(map[string]string{"COUNT_MAX_CATCHUP": "6"}))
	if err != nil || c.CountMaxCatchup != 6 {
		t.Fatalf("COUNT_MAX_CATCHUP=6: %d, %v", c.CountMaxCatchup, err)
	}
}
