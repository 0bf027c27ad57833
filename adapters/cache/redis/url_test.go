package rediscache

import (
	"crypto/tls"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	tests := []struct {
		url  string
		want redis.UniversalOptions
	}{
		{"redis://127.0.0.1:6379/0", redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://localhost", redis.UniversalOptions{Addrs: []string{"localhost:6379"}}},
		{"redis://localhost/", redis.UniversalOptions{Addrs: []string{"localhost:6379"}}},
		{"redis://cache.internal:6380/3", redis.UniversalOptions{Addrs: []string{"cache.internal:6380"}, DB: 3}},
		{"REDIS://h:1", redis.UniversalOptions{Addrs: []string{"h:1"}}},
		{"redis://:secret@h:6379/1", redis.UniversalOptions{Addrs: []string{"h:6379"}, Password: "secret", DB: 1}},
		{"redis://app:s%40c%3Aret@h", redis.UniversalOptions{Addrs: []string{"h:6379"}, Username: "app", Password: "s@c:ret"}},
		{"redis://app:p@ss@h", redis.UniversalOptions{Addrs: []string{"h:6379"}, Username: "app", Password: "p@ss"}},
		{"redis://[::1]:6390", redis.UniversalOptions{Addrs: []string{"[::1]:6390"}}},
		{"redis://[::1]", redis.UniversalOptions{Addrs: []string{"[::1]:6379"}}},
		{"rediss://user:pw@redis.example.com:6380/2", redis.UniversalOptions{
			Addrs: []string{"redis.example.com:6380"}, Username: "user", Password: "pw", DB: 2, TLSConfig: tlsConfig,
		}},
		// Cluster: several seeds, or cluster=true.
		{"redis://h1:6379,h2:6380,h3", redis.UniversalOptions{
			Addrs: []string{"h1:6379", "h2:6380", "h3:6379"}, IsClusterMode: true,
		}},
		{"rediss://u:p@h1:7000,h2:7001/0", redis.UniversalOptions{
			Addrs: []string{"h1:7000", "h2:7001"}, Username: "u", Password: "p", IsClusterMode: true, TLSConfig: tlsConfig,
		}},
		{"redis://config.cluster.example:6379?cluster=true", redis.UniversalOptions{
			Addrs: []string{"config.cluster.example:6379"}, IsClusterMode: true,
		}},
		{"redis://h1,h2?cluster=1", redis.UniversalOptions{Addrs: []string{"h1:6379", "h2:6379"}, IsClusterMode: true}},
		{"redis://h?cluster=false", redis.UniversalOptions{Addrs: []string{"h:6379"}}},
		// Sentinel: master_name, the hosts are sentinels (default port 26379).
		{"redis://:pw@s1,s2:26380,s3/2?master_name=mymaster", redis.UniversalOptions{
			Addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, MasterName: "mymaster", Password: "pw", DB: 2,
		}},
		{"redis://s1:26379?master_name=mymaster&sentinel_username=sen&sentinel_password=tinel", redis.UniversalOptions{
			Addrs: []string{"s1:26379"}, MasterName: "mymaster", SentinelUsername: "sen", SentinelPassword: "tinel",
		}},
		{"rediss://s1?master_name=m", redis.UniversalOptions{
			Addrs: []string{"s1:26379"}, MasterName: "m", TLSConfig: tlsConfig,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("ParseURL(%q)\n got %+v\nwant %+v", tc.url, *got, tc.want)
			}
		})
	}
}

// TestParseURLClientKind checks which client go-redis builds from each form.
func TestParseURLClientKind(t *testing.T) {
	tests := []struct {
		url, kind string
	}{
		{"redis://h:6379/0", "*redis.Client"},
		{"redis://h1:6379,h2:6379", "*redis.ClusterClient"},
		{"redis://h:6379?cluster=true", "*redis.ClusterClient"},
		{"redis://s1,s2?master_name=mymaster", "*redis.Client"}, // the Sentinel-backed failover client
	}
	for _, tc := range tests {
		c, err := Open(tc.url, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got := reflect.TypeOf(c.Client()).String(); got != tc.kind {
			t.Errorf("%s: %s, want %s", tc.url, got, tc.kind)
		}
		_ = c.Close()
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"",
		"localhost:6379",
		"http://h:6379",
		"unix:///tmp/redis.sock",
		"redis://",
		"redis://h1,,h2",
		"redis://h:port",
		"redis://h:0",
		"redis://h:70000",
		"redis://h/abc",
		"redis://h/-1",
		"redis://h/1/2",
		"redis://h#frag",
		"redis://h?dial_timeout=3s",
		"redis://h?master_name=",
		"redis://h?cluster=maybe",
		"redis://h?sentinel_password=x",
		"redis://h1,h2/1",
		"redis://h?cluster=true&master_name=m",
		"redis://h1,h2?master_name=m&cluster=true",
		"redis://u:secret@h?cluster=true&master_name=m",
	} {
		_, err := ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q): error shows the password: %v", raw, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://u:secret@h:1/0":            `"redis://u:xxxxx@h:1/0"`,
		"redis://h:1/0?master_name=m":       `"redis://h:1/0?master_name=m"`,
		"redis://h?sentinel_password=x&a=b": `"redis://h?..."`,
		"redis://user@h":                    `"redis://user@h"`,
	} {
		if got := redact(raw); got != want {
			t.Errorf("redact(%q) = %s, want %s", raw, got, want)
		}
	}
}
