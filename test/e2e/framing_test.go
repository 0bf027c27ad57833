package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/testenv"
)

// answer is one response read off a raw connection.
type answer struct {
	status int
	header http.Header
	body   string
	close  bool // the answer said Connection: close
}

// exchange writes raw on a new connection from dial and reads answers
// until the server closes the connection. It returns them, and what ended
// the reading: io.EOF when the server closed the connection, a timeout
// when it kept it open (the deadline only bounds a broken server).
func exchange(t *testing.T, dial func() (net.Conn, error), raw string) ([]answer, error) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	var out []answer
	for {
		if _, err := br.Peek(1); err != nil {
			return out, err
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(out), err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("answer %d: reading the body: %v", len(out), err)
		}
		out = append(out, answer{status: res.StatusCode, header: res.Header, body: string(b), close: res.Close})
	}
}

// framingServer starts activityd, plain or with TLS, and returns the dialer
// of its API port, its base URL and the admin token.
func framingServer(t *testing.T, withTLS bool) (dial func() (net.Conn, error), base, token string) {
	dir := t.TempDir()
	env := []string{"DATABASE_URL=memory:"}
	var tlsCfg *tls.Config
	if withTLS {
		cert, key := testenv.WriteTLSPair(t, dir, 1)
		env = append(env, "TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key)
		pemBytes, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		tlsCfg = &tls.Config{RootCAs: pool}
	}
	p := binary.Serve.Start(t, dir, env...)
	u, err := url.Parse(p.Base)
	if err != nil {
		t.Fatal(err)
	}
	dial = func() (net.Conn, error) { return net.Dial("tcp", u.Host) }
	if withTLS {
		dial = func() (net.Conn, error) { return tls.Dial("tcp", u.Host, tlsCfg) }
	}
	return dial, p.Base, p.BootstrapToken(t)
}

// TestAmbiguousFramingRefused: a request whose end is ambiguous is answered
// 400 and its connection closed, so that what follows it — here a request
// recording an event — is never served; over TLS too. Shapes net/http
// refuses itself (two different lengths, a coding other than chunked) are
// closed too.
func TestAmbiguousFramingRefused(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[withTLS], func(t *testing.T) {
			dial, base, token := framingServer(t, withTLS)
			smuggled := func(user int) string {
				body := fmt.Sprintf(`{"user_id":%d,"action":"login"}`, user)
				return "POST /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: Token " + token +
					"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
			}
			head := "POST /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: Token " + token + "\r\nContent-Type: application/json\r\n"
			cases := []struct {
				name    string
				raw     string
				answers []int // statuses, in order; the last one closes the connection
				fields  []string
			}{
				{"Content-Length with Transfer-Encoding", head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled(1),
					[]int{400}, []string{"Content-Length", "Transfer-Encoding"}},
				{"Transfer-Encoding with Content-Length", head + "transfer-encoding: chunked\r\ncontent-length: 40\r\n\r\n0\r\n\r\n" + smuggled(2),
					[]int{400}, []string{"Content-Length", "Transfer-Encoding"}},
				{"after a good request", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" +
					head + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" + smuggled(3),
					[]int{200, 400}, []string{"Content-Length", "Transfer-Encoding"}},
				{"Content-Length twice", head + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}" + smuggled(4),
					[]int{400}, []string{"Content-Length"}},
				{"Transfer-Encoding on HTTP/1.0", strings.Replace(head, "HTTP/1.1", "HTTP/1.0", 1) +
					"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled(5),
					[]int{400}, []string{"Transfer-Encoding"}},
				{"folded header", head + "X-Note: a\r\n b\r\nContent-Length: 2\r\n\r\n{}" + smuggled(6),
					[]int{400}, []string{"(headers)"}},
				// net/http's own refusals: not ours to word, but closed all the same.
				{"two different Content-Lengths", head + "Content-Length: 2\r\nContent-Length: 30\r\n\r\n{}" + smuggled(7),
					[]int{400}, nil},
				{"Transfer-Encoding gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled(8),
					[]int{501}, nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got, end := exchange(t, dial, tc.raw)
					if !errors.Is(end, io.EOF) {
						t.Fatalf("after %d answers the connection was not closed: %v", len(got), end)
					}
					if len(got) != len(tc.answers) {
						t.Fatalf("%d answers, want %d: %+v", len(got), len(tc.answers), got)
					}
					for i, want := range tc.answers {
						if got[i].status != want {
							t.Fatalf("answer %d: %d %s, want %d", i, got[i].status, got[i].body, want)
						}
					}
					if tc.fields == nil {
						return
					}
					last := got[len(got)-1]
					var p struct {
						Type   string
						Errors []struct{ Field string }
					}
					if err := json.Unmarshal([]byte(last.body), &p); err != nil ||
						!strings.HasSuffix(p.Type, "#ambiguous-framing") || last.header.Get("Content-Type") != "application/problem+json" ||
						!last.close {
						t.Fatalf("refusal: %v %s (Content-Type %q, Connection: close %v)", err, last.body,
							last.header.Get("Content-Type"), last.close)
					}
					var fields []string
					for _, e := range p.Errors {
						fields = append(fields, e.Field)
					}
					if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
						t.Errorf("fields %v, want %v", fields, tc.fields)
					}
				})
			}
			// None of the smuggled requests recorded anything.
			var r binary.Response
			if withTLS {
				r = tlsCall(t, base+"/v1/events", token)
			} else {
				r = binary.Call(t, "GET", base+"/v1/events", token, "")
			}
			binary.Want(t, r, 200)
			if items, _ := r.Body["items"].([]any); len(items) != 0 {
				t.Fatalf("smuggled requests were served: %s", r.Raw)
			}
		})
	}
}

// tlsCall is binary.Call over TLS, trusting any certificate (the server's
// own is checked in TestTLS).
func tlsCall(t *testing.T, url, token string) binary.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+token)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test server
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := binary.Response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// TestKeepAliveFraming: pipelined requests on one connection, with bodies
// by Content-Length and by chunks (extensions and a trailer too), are all
// served in order, and the connection stays open for more.
func TestKeepAliveFraming(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[withTLS], func(t *testing.T) {
			dial, _, token := framingServer(t, withTLS)
			post := "POST /v1/events HTTP/1.1\r\nHost: a\r\nAuthorization: Token " + token + "\r\nContent-Type: application/json\r\n"
			body := `{"user_id":9,"action":"login"}`
			raw := "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" +
				post + "Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body +
				post + "Transfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n", 10, body[:10], len(body)-10, body[10:]) +
				post + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body) +
				"GET /v1/users/9/events HTTP/1.1\r\nHost: a\r\nAuthorization: Token " + token + "\r\n\r\n"
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			read := func() answer {
				t.Helper()
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("reading an answer: %v", err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return answer{status: res.StatusCode, header: res.Header, body: string(b), close: res.Close}
			}
			for i, want := range []int{200, 201, 201, 201, 200} {
				a := read()
				switch {
				case a.status != want:
					t.Fatalf("answer %d: %d %s, want %d", i, a.status, a.body, want)
				case i == 4 && strings.Count(a.body, `"action":"login"`) != 3:
					t.Fatalf("list: %s, want the 3 events", a.body)
				case (a.header.Get("Strict-Transport-Security") != "") != withTLS:
					// HSTS is for answers over TLS only (RFC 6797 §7.2).
					t.Fatalf("answer %d: Strict-Transport-Security %q", i, a.header.Get("Strict-Transport-Security"))
				}
			}
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatalf("the connection did not stay open: %v", err)
			}
			if a := read(); a.status != 200 || a.close {
				t.Fatalf("another request on the connection: %d, Connection: close %v", a.status, a.close)
			}
		})
	}
}
