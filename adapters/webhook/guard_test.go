package webhook

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newGuard(t *testing.T, allow ...string) *Guard {
	t.Helper()
	g, err := NewGuard(allow)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// tcpFor is the network a dialer names when connecting to addr.
func tcpFor(addr string) string {
	if strings.Contains(addr, ":") {
		return "tcp6"
	}
	return "tcp4"
}

// refusedAddrs is one address per refused range, with the reason's key word.
var refusedAddrs = []struct{ addr, reason string }{
	{"0.0.0.0", "unspecified"},
	{"0.1.2.3", "unspecified"},
	{"127.0.0.1", "loopback"},
	{"127.255.255.254", "loopback"},
	{"10.0.0.1", "private"},
	{"10.255.255.255", "private"},
	{"172.16.0.1", "private"},
	{"172.31.255.255", "private"},
	{"192.168.1.1", "private"},
	{"169.254.169.254", "link-local"}, // AWS, GCP, Azure metadata
	{"169.254.0.1", "link-local"},
	{"100.64.0.1", "CGNAT"},
	{"100.100.100.200", "CGNAT"}, // Alibaba Cloud metadata
	{"100.127.255.255", "CGNAT"},
	{"192.0.0.192", "IETF"}, // Oracle Cloud metadata
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast"},
	{"240.0.0.1", "reserved"},
	{"255.255.255.255", "reserved"},
	{"::", "unspecified"},
	{"::1", "loopback"},
	{"fc00::1", "unique local"},
	{"fd00:ec2::254", "unique local"}, // AWS metadata over IPv6
	{"fe80::1", "link-local"},
	{"febf:ffff::1", "link-local"},
	{"fec0::1", "site-local"},
	{"ff02::1", "multicast"},
	{"::ffff:127.0.0.1", "IPv4-mapped loopback"},
	{"::ffff:10.1.2.3", "IPv4-mapped private"},
	{"::ffff:169.254.169.254", "IPv4-mapped link-local"},
	{"::ffff:100.64.0.1", "IPv4-mapped shared"},
	{"::ffff:0.0.0.0", "IPv4-mapped unspecified"},
	{"::ffff:224.0.0.1", "IPv4-mapped multicast"},
	{"64:ff9b::a9fe:a9fe", "NAT64 link-local"},
	{"::7f00:1", "IPv4-compatible loopback"},
	{"2002:c0a8:0101::1", "6to4 private"},
}

// allowedAddrs are public addresses, some close to a refused range's edge.
var allowedAddrs = []string{
	"8.8.8.8", "1.1.1.1", "93.184.215.14",
	"9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
	"172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
	"169.253.255.255", "169.255.0.0", "192.0.1.1", "223.255.255.255",
	"2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
}

func TestControlRefusesEveryRange(t *testing.T) {
	g := newGuard(t)
	for _, tt := range refusedAddrs {
		t.Run(tt.addr, func(t *testing.T) {
			address := net.JoinHostPort(tt.addr, "443")
			err := g.control("hooks.example.com")(tcpFor(tt.addr), address, nil)
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefusedAddress) {
				t.Fatalf("control(%s) = %v, want a RefusedError", address, err)
			}
			if !strings.Contains(err.Error(), address) || !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("error %q: want it to name %s and say %q", err, address, tt.reason)
			}
			if err := g.CheckURL("https://"+net.JoinHostPort(tt.addr, "443")+"/hook", false); !errors.Is(err, ErrRefusedAddress) {
				t.Errorf("CheckURL = %v, want refused", err)
			}
		})
	}
}

func TestControlAllowsPublic(t *testing.T) {
	g := newGuard(t)
	for _, a := range allowedAddrs {
		if err := g.control("hooks.example.com")(tcpFor(a), net.JoinHostPort(a, "443"), nil); err != nil {
			t.Errorf("control(%s) = %v, want allowed", a, err)
		}
		if err := g.CheckURL("https://"+net.JoinHostPort(a, "443")+"/", false); err != nil {
			t.Errorf("CheckURL(%s) = %v, want allowed", a, err)
		}
	}
	if err := g.control("x")("udp4", "8.8.8.8:53", nil); !errors.Is(err, ErrRefusedAddress) {
		t.Errorf("a UDP dial = %v, want refused", err)
	}
}

func TestAllowList(t *testing.T) {
	g := newGuard(t, "10.0.0.0/8", " fd12::/16 ", "192.168.1.7", "Hooks.Internal.")
	tests := []struct {
		host, addr string
		allowed    bool
	}{
		{"a.example", "10.20.30.40", true},
		{"a.example", "::ffff:10.20.30.40", true}, // mapped form of an allowed address
		{"a.example", "fd12:3456::1", true},
		{"a.example", "192.168.1.7", true},
		{"a.example", "192.168.1.8", false},
		{"a.example", "172.16.0.1", false},
		{"a.example", "127.0.0.1", false},
		{"hooks.internal", "172.16.0.1", true}, // the name is trusted, whatever it resolves to
		{"HOOKS.internal.", "127.0.0.1", true},
		{"x.hooks.internal", "172.16.0.1", false}, // exact names, no subdomains
		{"hooks.internal.evil.example", "172.16.0.1", false},
	}
	for _, tt := range tests {
		err := g.control(tt.host)(tcpFor(tt.addr), net.JoinHostPort(tt.addr, "80"), nil)
		if (err == nil) != tt.allowed {
			t.Errorf("host %s at %s: err %v, want allowed %v", tt.host, tt.addr, err, tt.allowed)
		}
	}
	if err := g.CheckURL("https://10.1.1.1/hook", false); err != nil {
		t.Errorf("CheckURL of an allowed CIDR's address: %v", err)
	}
	if err := g.CheckURL("https://[fd12::5]:8443/hook", false); err != nil {
		t.Errorf("CheckURL of an allowed IPv6 CIDR's address: %v", err)
	}
}

func TestNewGuardRefusesBadEntries(t *testing.T) {
	for _, entry := range []string{"", "  ", "10.0.0.0/33", "10.0.0.0/", "not a host", "bad_/8", "https://hooks.internal", "hooks..internal", "*.internal"} {
		if _, err := NewGuard([]string{entry}); err == nil {
			t.Errorf("NewGuard(%q) accepted", entry)
		}
	}
}

func TestCheckURL(t *testing.T) {
	g := newGuard(t, "dev.localhost")
	tests := []struct {
		raw       string
		allowHTTP bool
		ok        bool
	}{
		{"https://hooks.example.com/in?x=1", false, true},
		{"HTTPS://Hooks.Example.com:8443/in", false, true},
		{"https://internal-looking.example", false, true}, // names are checked at dial time
		{"http://hooks.example.com/in", false, false},
		{"http://hooks.example.com/in", true, true},
		{"ftp://hooks.example.com/in", true, false},
		{"javascript:alert(1)", true, false},
		{"https:hooks.example.com", false, false},
		{"//hooks.example.com/in", false, false},
		{"/in", false, false},
		{"hooks.example.com/in", false, false},
		{"", false, false},
		{"https://user:pass@hooks.example.com/in", false, false},
		{"https://user@hooks.example.com/in", false, false},
		{"https:///in", false, false},
		{"https://:443/in", false, false},
		{"https://127.0.0.1/in", false, false},
		{"https://[::1]/in", false, false},
		{"https://[fe80::1%25eth0]/in", false, false},
		{"https://169.254.169.254/latest/meta-data/", false, false},
		{"https://localhost/in", false, false},
		{"https://LOCALHOST./in", false, false},
		{"https://api.localhost/in", false, false},
		{"https://dev.localhost/in", false, true}, // allow-listed by name
		{"https://hooks example.com/in", false, false},
		{"https://8.8.8.8/in", false, true},
	}
	for _, tt := range tests {
		err := g.CheckURL(tt.raw, tt.allowHTTP)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q, %v) = %v, want ok %v", tt.raw, tt.allowHTTP, err, tt.ok)
		}
	}
}

// server is an httptest server on 127.0.0.1 counting its requests.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestClientLoopbackServer(t *testing.T) {
	srv, hits := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	_, err := newGuard(t).Client(5 * time.Second).Get(srv.URL)
	if !errors.Is(err, ErrRefusedAddress) || !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
		t.Fatalf("default guard: err %v, want a refusal naming %s", err, srv.Listener.Addr())
	}
	if hits.Load() != 0 {
		t.Fatalf("the server was reached %d times", hits.Load())
	}

	for _, allow := range []string{"127.0.0.1/32", "localhost"} {
		t.Run(allow, func(t *testing.T) {
			target := srv.URL
			if allow == "localhost" { // a name, resolved at dial time
				target = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
			}
			resp, err := newGuard(t, allow).Client(5 * time.Second).Get(target)
			if err != nil {
				t.Fatalf("allowed %s: %v", allow, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("allowed %s: %d %q", allow, resp.StatusCode, body)
			}
		})
	}

	// A name resolving to loopback is refused when only another name is allowed.
	_, err = newGuard(t, "hooks.internal").Client(5 * time.Second).Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	if !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("localhost with hooks.internal allowed: err %v, want refused", err)
	}
}

func TestClientProxyFromEnvironmentIgnored(t *testing.T) {
	srv, hits := server(t, func(w http.ResponseWriter, r *http.Request) {})
	t.Setenv("HTTP_PROXY", srv.URL)
	t.Setenv("HTTPS_PROXY", srv.URL)
	// 192.0.2.1 (TEST-NET-1) is public for the guard. The proxy's address is
	// allowed, as an operator's proxy would be, so only ignoring the
	// environment keeps the request from going through it: a proxy dials the
	// target itself, where the guard cannot check the address.
	c := newGuard(t, "127.0.0.1/32").Client(300 * time.Millisecond)
	if resp, err := c.Get("http://192.0.2.1/"); err == nil {
		resp.Body.Close()
	}
	if hits.Load() != 0 {
		t.Fatal("the request went through the proxy from the environment")
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	resp, err := newGuard(t, "127.0.0.1/32").Client(5 * time.Second).Get(srv.URL + "/hook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
		t.Fatalf("got %d Location %q, want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	if followed.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}
