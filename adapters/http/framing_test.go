package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// parse feeds in to a new parser in pieces of at most step bytes (0: all
// at once) and returns the parser, the offsets at which each request
// ended, and how many bytes it let through.
func parse(in []byte, step int) (p *framingParser, ends []int, passed int) {
	p = &framingParser{}
	for off := 0; off < len(in); {
		n := len(in) - off
		if step > 0 {
			n = min(n, step)
		}
		msgs := p.msgs
		k := p.feed(in[off : off+n])
		passed += k
		if p.msgs != msgs {
			// Pieces of one byte locate each end exactly; larger ones
			// only say that it is in this piece.
			ends = append(ends, off+k)
		}
		if p.st == fsCut {
			break
		}
		off += n
	}
	return p, ends, passed
}

func TestFramingParser(t *testing.T) {
	const get = "GET /v1/events HTTP/1.1\r\nHost: a\r\n\r\n"
	const options = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
	post := func(headers, body string) string {
		return "POST /v1/events HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n" + body
	}
	cases := []struct {
		name string
		in   string
		msgs int64 // requests read to their end
		// refused: the reason and the index of the request refused; the
		// stream is then cut after its header block (cutAt bytes).
		reason framingReason
		bad    int64
		cutAt  int // -1: not cut
	}{
		{"one GET", get, 1, framingOK, 0, -1},
		{"pipelined GETs, bare LF", get + "GET / HTTP/1.1\nHost: a\n\n" + get, 3, framingOK, 0, -1},
		{"Content-Length body", post("Content-Length: 5\r\n", "hello") + get, 2, framingOK, 0, -1},
		{"Content-Length spaced, zero-padded", post("content-length: \t005 \r\n", "hello") + get, 2, framingOK, 0, -1},
		{"chunked body", post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") + get, 2, framingOK, 0, -1},
		{"chunked: extensions, upper-case hex, trailer", post("TRANSFER-ENCODING:  Chunked \r\n",
			"A;name=\"v\"\r\n0123456789\r\n1 \t\r\nx\r\n0;last\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n") + get, 2, framingOK, 0, -1},
		{"chunked: trailer ended by a bare LF", post("Transfer-Encoding: chunked\r\n", "0\r\n\n") + get, 2, framingOK, 0, -1},
		{"CR LF after a POST skipped", post("Content-Length: 2\r\n", "{}") + "\r\n" + get, 2, framingOK, 0, -1},
		{"HTTP/1.0 keep-alive", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx" + get, 2, framingOK, 0, -1},
		{"headers that look alike", post("Content-Type: application/json\r\nContent-Lengths: 9\r\nTransfer: x\r\nX-Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "") + get, 2, framingOK, 0, -1},
		{"OPTIONS * is not counted", options + post("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 1, framingBoth, 0, len(options)},

		{"Content-Length and Transfer-Encoding", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") + get, 0, framingBoth, 0, 0},
		{"Transfer-Encoding and Content-Length, second request", get + post("transfer-encoding: chunked\r\ncontent-length: 4\r\n", "0\r\n\r\n") + get, 1, framingBoth, 1, len(get)},
		{"two equal Content-Lengths", post("Content-Length: 2\r\nContent-Length: 2\r\n", "{}") + get, 0, framingTwoLengths, 0, 0},
		{"two Content-Lengths", post("Content-Length: 2\r\nContent-Length: 20\r\n", "{}") + get, 0, framingTwoLengths, 0, 0},
		{"Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, 0, framingOldEncoding, 0, 0},
		{"folded header", post("X-A: 1\r\n 2\r\nContent-Length: 2\r\n", "{}") + get, 0, framingFolded, 0, 0},
		{"folded Transfer-Encoding", post("Transfer-Encoding:\r\n\tchunked\r\n", "0\r\n\r\n") + get, 0, framingFolded, 0, 0},
		{"Transfer-Encoding gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 0, framingBadEncoding, 0, 0},
		{"Transfer-Encoding twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 0, framingBadEncoding, 0, 0},
		{"Content-Length +5", post("Content-Length: +5\r\n", "hello"), 0, framingBadLength, 0, 0},
		{"Content-Length 2^63", post("Content-Length: 9223372036854775808\r\n", ""), 0, framingBadLength, 0, 0},
		{"Content-Length empty", post("Content-Length:\r\n", ""), 0, framingBadLength, 0, 0},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, framingMalformed, 0, 0},

		// A chunked body that breaks its framing: cut at the bad byte.
		{"chunk without its CR LF", post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n"), 0, framingOK, 0, -2},
		{"chunk line with a bare LF", post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"), 0, framingOK, 0, -2},
		{"chunk size with a space before the extension", post("Transfer-Encoding: chunked\r\n", "5 ;x\r\nhello\r\n0\r\n\r\n"), 0, framingOK, 0, -2},
		{"chunk size of 17 digits", post("Transfer-Encoding: chunked\r\n", "00000000000000005\r\nhello\r\n0\r\n\r\n"), 0, framingOK, 0, -2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			for _, step := range []int{0, 1, 7} {
				p, _, passed := parse(in, step)
				if p.msgs != tc.msgs || p.reason != tc.reason {
					t.Fatalf("step %d: %d requests, reason %d; want %d, reason %d", step, p.msgs, p.reason, tc.msgs, tc.reason)
				}
				switch {
				case tc.cutAt == -1:
					if p.st == fsCut || passed != len(in) {
						t.Fatalf("step %d: cut after %d of %d bytes", step, passed, len(in))
					}
				case tc.cutAt == -2: // in the body, before its end
					if p.st != fsCut || passed >= len(in) || p.reason != framingOK {
						t.Fatalf("step %d: state %d, passed %d of %d bytes", step, p.st, passed, len(in))
					}
				default:
					// Cut right after the refused request's header block.
					want := tc.cutAt + bytes.Index(in[tc.cutAt:], []byte("\r\n\r\n")) + 4
					if p.st != fsCut || passed != want || p.bad != tc.bad {
						t.Fatalf("step %d: state %d, passed %d bytes, bad %d; want cut after %d, bad %d",
							step, p.st, passed, p.bad, want, tc.bad)
					}
				}
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// netHTTPEnds is where net/http's server ends each request of in, as long
// as it would keep the connection: the offsets after each body.
func netHTTPEnds(in []byte) []int {
	cr := &countingReader{r: bytes.NewReader(in)}
	br := bufio.NewReader(cr)
	var ends []int
	post := false
	for {
		if post { // as net/http's conn.readRequest
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil || req.ProtoMajor != 1 {
			return ends
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return ends
		}
		ends = append(ends, cr.n-br.Buffered())
		if req.Close {
			return ends
		}
		post = req.Method == http.MethodPost
	}
}

// FuzzFramingAgreesWithNetHTTP: wherever net/http reads a request to its
// end and would read another on the connection, the parser ends that
// request at the same byte — unless it refused the request for ambiguous
// framing, which net/http resolves silently (two Content-Lengths,
// Transfer-Encoding with Content-Length or on HTTP/1.0, folded lines).
func FuzzFramingAgreesWithNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"action\":\"up\"}\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n\r\nPOST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n",
		"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want := netHTTPEnds(in)
		p, got, _ := parse(in, 1)
		for i, end := range want {
			if i < len(got) {
				if got[i] != end {
					t.Fatalf("request %d ends at byte %d for net/http, at %d for the parser (%q)", i, end, got[i], in)
				}
				continue
			}
			// The parser stopped in request i, which net/http read whole.
			switch {
			case p.st != fsCut:
				t.Fatalf("request %d ends at byte %d for net/http; the parser is still in it (%q)", i, end, in)
			case p.reason == framingOK || p.reason > framingFolded:
				t.Fatalf("request %d, read whole by net/http, cut by the parser (reason %d) (%q)", i, p.reason, in)
			}
			return
		}
	})
}

// sliceConn is a net.Conn whose reads come from a byte slice.
type sliceConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *sliceConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// BenchmarkFramingConn is the cost of the framing guard on the reads of
// a connection: net/http's 4 KiB reads of pipelined requests as the
// benchmarks send them (POST /v1/events with a bearer token and a small
// body; GET of a list), and of 1 MiB batch bodies.
func BenchmarkFramingConn(b *testing.B) {
	create := "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Content-Length: 58\r\nAuthorization: Bearer adt_0123456789abcdef0123456789abcdef\r\n" +
		"Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n" +
		`{"user_id":42,"action":"login","metadata":{"ip":"1.2.3.4"}}`[:58]
	list := "GET /v1/users/42/events?limit=50 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Authorization: Bearer adt_0123456789abcdef0123456789abcdef\r\nAccept-Encoding: gzip\r\n\r\n"
	batch := "POST /v1/events/batch HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n" +
		strings.Repeat("x", 1<<20)
	for _, bc := range []struct {
		name string
		req  string
	}{{"create", create}, {"list", list}, {"batch_1MiB", batch}} {
		stream := []byte(strings.Repeat(bc.req, max(1, (256<<10)/len(bc.req))))
		perStream := int64(strings.Count(string(stream), " HTTP/1.1\r\n"))
		for _, guarded := range []bool{false, true} {
			name := bc.name + "/plain"
			if guarded {
				name = bc.name + "/guarded"
			}
			b.Run(name, func(b *testing.B) {
				buf := make([]byte, 4096)
				b.SetBytes(int64(len(stream)))
				b.ReportAllocs()
				for b.Loop() {
					sc := &sliceConn{r: bytes.NewReader(stream)}
					var c net.Conn = sc
					if guarded {
						c = &framingConn{Conn: sc}
					}
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
					if fc, ok := c.(*framingConn); ok && fc.p.msgs != perStream {
						b.Fatalf("%d requests parsed, want %d", fc.p.msgs, perStream)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*perStream), "ns/request")
			})
		}
	}
}

// A framingConn reads like its connection until a cut; past it, reads
// end (io.EOF) once the refused request is being served, and before that
// drop what arrives (an earlier pipelined request is not taken for
// abandoned by net/http's background read).
func TestFramingConnCut(t *testing.T) {
	good := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	bad := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	smuggled := "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	fc := &framingConn{Conn: server}
	go func() { _, _ = client.Write([]byte(good + bad + smuggled)) }()

	buf := make([]byte, 4096)
	var got []byte
	for len(got) < len(good+bad) {
		n, err := fc.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v after %q", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != good+bad {
		t.Fatalf("read %q, want the two header blocks only", got)
	}
	if fc.refused.Load() != 2 || framingReason(fc.reason.Load()) != framingBoth {
		t.Fatalf("refused %d, reason %d; want request 2, framingBoth", fc.refused.Load(), fc.reason.Load())
	}
	// While the first request is served, a read waits (and drops what
	// the client sends) rather than reporting the end.
	fc.served.Store(1)
	_ = fc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	go func() { _, _ = client.Write([]byte("more")) }()
	if n, err := fc.Read(buf); n != 0 || err == nil || err == io.EOF {
		t.Fatalf("Read while request 1 is served: %d, %v; want a timeout", n, err)
	}
	// Serving the refused request: the stream has ended.
	fc.served.Store(2)
	_ = fc.SetReadDeadline(time.Time{})
	if n, err := fc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read while the refused request is served: %d, %v; want io.EOF", n, err)
	}
}

// randomSplits: the parser's outcome does not depend on how the reads
// split the stream.
func TestFramingParserSplits(t *testing.T) {
	in := []byte(strings.Repeat("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n"+
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\r\n", 20))
	_, want, _ := parse(in, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		p := &framingParser{}
		for off := 0; off < len(in); {
			n := min(len(in)-off, 1+rng.IntN(64))
			if k := p.feed(in[off : off+n]); k != n {
				t.Fatalf("cut after %d bytes", off+k)
			}
			off += n
		}
		if p.msgs != int64(len(want)) || p.st != fsRequestLine {
			t.Fatalf("%d requests, state %d; want %d, at a request line", p.msgs, p.st, len(want))
		}
	}
}
