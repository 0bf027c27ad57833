package rediscache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Default ports for hosts given without one.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// ParseURL turns REDIS_URL into go-redis universal options, from which
// redis.NewUniversalClient builds a single-node, Cluster or Sentinel
// client. It sets addresses, credentials, database and TLS only: no
// timeouts (Open adds the cache's), so that other Redis users (the job
// queue, with its blocking commands) can start from the same options.
//
// Forms:
//
//	redis://[user:password@]host[:port][/db]           one server (port 6379, db 0 by default)
//	rediss://...                                        the same over TLS (1.2 or later)
//	redis://[user:password@]h1:6379,h2:6379,h3:6379     Redis Cluster: the hosts are seed nodes
//	redis://host:6379?cluster=true                      Redis Cluster from a single seed
//	redis://[user:password@]s1,s2:26380/db?master_name=mymaster
//	                                                    Sentinel: the hosts are sentinels
//	                                                    (port 26379 by default), the master
//	                                                    is the one named master_name
//
// Query parameters (any other is an error, so a typo cannot go unnoticed):
//
//	master_name        Sentinel master name; selects the Sentinel form
//	cluster            true: Cluster even with one host
//	sentinel_username  credentials for the sentinels themselves (the
//	sentinel_password  userinfo is for the data nodes)
//
// A Cluster URL may name no database but 0. A password with reserved
// characters is percent-encoded, as in any URL. With rediss, each
// connection verifies the certificate against the host name it dials
// (crypto/tls's default when ServerName is empty), which is right for
// every node of a Cluster or for a master found through Sentinel.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	o, err := parseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("rediscache: REDIS_URL %s: %w", redact(raw), err)
	}
	return o, nil
}

func parseURL(raw string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("want redis://host:port or rediss://host:port")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "redis" && scheme != "rediss" {
		return nil, fmt.Errorf("scheme %q is not redis or rediss", scheme)
	}
	// The authority may hold several comma-separated hosts, which net/url
	// does not accept: parse the rest of the URL with one placeholder host.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostlist := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostlist = authority[:at+1], authority[at+1:]
	}
	u, err := url.Parse(scheme + "://" + userinfo + "placeholder" + tail)
	if err != nil {
		return nil, errors.New("malformed URL") // url's error would repeat the password
	}
	if u.Fragment != "" {
		return nil, errors.New("a fragment (#...) has no meaning here")
	}

	o := &redis.UniversalOptions{}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}

	q := u.Query()
	for k := range q {
		switch k {
		case "master_name", "cluster", "sentinel_username", "sentinel_password":
		default:
			return nil, fmt.Errorf("unknown parameter %q (known: master_name, cluster, sentinel_username, sentinel_password)", k)
		}
	}
	o.MasterName = q.Get("master_name")
	if q.Has("master_name") && o.MasterName == "" {
		return nil, errors.New("master_name is empty")
	}
	o.SentinelUsername = q.Get("sentinel_username")
	o.SentinelPassword = q.Get("sentinel_password")
	if o.MasterName == "" && (o.SentinelUsername != "" || o.SentinelPassword != "") {
		return nil, errors.New("sentinel_username and sentinel_password need master_name")
	}
	forceCluster := false
	if q.Has("cluster") {
		if forceCluster, err = strconv.ParseBool(q.Get("cluster")); err != nil {
			return nil, fmt.Errorf("cluster=%q is not a boolean", q.Get("cluster"))
		}
	}

	port := defaultPort
	if o.MasterName != "" {
		port = defaultSentinelPort
	}
	for h := range strings.SplitSeq(hostlist, ",") {
		addr, err := hostPort(h, port)
		if err != nil {
			return nil, err
		}
		o.Addrs = append(o.Addrs, addr)
	}

	switch p := strings.Trim(u.Path, "/"); {
	case p == "":
	case strings.Contains(p, "/"):
		return nil, fmt.Errorf("path %q is not /db", u.Path)
	default:
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("database %q is not a number", p)
		}
		o.DB = db
	}

	cluster := forceCluster || (o.MasterName == "" && len(o.Addrs) > 1)
	switch {
	case cluster && o.MasterName != "":
		return nil, errors.New("master_name (Sentinel) and cluster exclude each other")
	case cluster && o.DB != 0:
		return nil, fmt.Errorf("Redis Cluster has only database 0, not %d", o.DB)
	}
	o.IsClusterMode = cluster

	if scheme == "rediss" {
		// No ServerName: crypto/tls then checks each connection against
		// the host it dials.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// hostPort validates one host of the host list and adds the default port.
func hostPort(h, port string) (string, error) {
	if h == "" {
		return "", errors.New("empty host in the host list")
	}
	u, err := url.Parse("//" + h)
	if err != nil || u.Host != h || u.Hostname() == "" || u.User != nil {
		return "", fmt.Errorf("host %q is not host[:port]", h)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", fmt.Errorf("host %q has an invalid port", h)
		}
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// redact returns raw with any password replaced, for error messages.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return strconv.Quote(raw)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		user, _, hasPass := strings.Cut(authority[:at], ":")
		if hasPass {
			authority = user + ":xxxxx" + authority[at:]
		}
	}
	if strings.Contains(tail, "password=") {
		if i := strings.Index(tail, "?"); i >= 0 {
			tail = tail[:i] + "?..."
		}
	}
	return strconv.Quote(scheme + "://" + authority + tail)
}
