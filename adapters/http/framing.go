package httpapi

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/activityd/activityd/domain"
)

// Ambiguous framing (request smuggling). A request whose end two HTTP
// parsers could place differently — Content-Length together with
// Transfer-Encoding, two Content-Lengths, Transfer-Encoding on HTTP/1.0, a
// header folded onto the next line — lets a proxy in front and this server
// disagree on where the next request starts, and bytes the proxy took for a
// body are served here as a request of their own. net/http resolves such
// requests silently (Transfer-Encoding wins and Content-Length is deleted
// before a handler could see it), so the check is made on the connection:
// GuardFraming wraps the API listener's connections in a reader that
// follows HTTP/1.1 framing over exactly the bytes the server reads, and on
// such a request ends the stream after its header block. The request is
// then answered 400 (ambiguous-framing, naming the headers) with
// Connection: close, and whatever the client sent after it is never read
// as a request.

// framingReason says why a request's framing is refused; framingOK: it
// is not. When a request has several, the first in this order is given.
type framingReason uint8

const (
	framingOK          framingReason = iota
	framingBoth                      // Content-Length and Transfer-Encoding
	framingTwoLengths                // Content-Length more than once
	framingOldEncoding               // Transfer-Encoding in an HTTP/1.0 request
	framingFolded                    // a header line folded onto the next (obs-fold)
	framingBadEncoding               // Transfer-Encoding other than one "chunked" (net/http refuses it too)
	framingBadLength                 // Content-Length not one decimal number (net/http refuses it too)
	framingMalformed                 // not an HTTP/1.x request (net/http refuses it too)
)

// framingProblem is the 400 a request with ambiguous framing is answered.
func framingProblem(r framingReason) problem {
	var detail string
	var fields []fieldProblem
	blame := func(field, msg string) {
		fields = append(fields, fieldProblem{Field: field, Code: domain.CodeMalformed, Message: msg})
	}
	switch r {
	case framingBoth:
		detail = "the request has both Content-Length and Transfer-Encoding, so where it ends is ambiguous; send one of them"
		blame("Content-Length", "must not be sent with Transfer-Encoding")
		blame("Transfer-Encoding", "must not be sent with Content-Length")
	case framingTwoLengths:
		detail = "the request has more than one Content-Length header; send exactly one"
		blame("Content-Length", "must be given at most once")
	case framingOldEncoding:
		detail = "an HTTP/1.0 request cannot use Transfer-Encoding; send Content-Length, or use HTTP/1.1"
		blame("Transfer-Encoding", "is not defined in HTTP/1.0")
	case framingBadEncoding:
		detail = "the only Transfer-Encoding accepted is a single chunked"
		blame("Transfer-Encoding", "must be chunked, given once")
	case framingBadLength:
		detail = "the Content-Length header is not a decimal number of bytes"
		blame("Content-Length", "must be a decimal number")
	case framingFolded:
		detail = "a header line starts with a space or a tab (obsolete line folding); send each header on one line"
		blame("(headers)", "must not be folded over several lines")
	default:
		detail = "the request is not an HTTP/1.x request"
	}
	p := newProblem(http.StatusBadRequest, slugAmbiguousFraming, detail+"; the connection is closed")
	p.Errors = fields
	return p
}

// The states of framingParser.
const (
	fsRequestLine  = iota // in a request line (or before it, skipping CR/LF after a POST)
	fsLineStart           // at the start of a header line
	fsLineCR              // a header line that began with CR: the blank line, or garbage
	fsName                // in a header name that may be Content-Length or Transfer-Encoding
	fsSkipLine            // in a header line that does not bear on framing
	fsLength              // in a Content-Length value
	fsEncoding            // in a Transfer-Encoding value
	fsValueCR             // a CR in one of those values: the line's end, or garbage
	fsBody                // in a body of known length
	fsChunkSize           // in a chunk-size
	fsChunkSpace          // in whitespace after a chunk-size
	fsChunkExt            // in a chunk extension
	fsChunkLF             // after the CR that ends a chunk line
	fsChunkData           // in chunk data
	fsChunkCR             // after chunk data, before its CR
	fsChunkCRLF           // after that CR
	fsTrailerStart        // at the start of a trailer line
	fsTrailerCR           // a trailer line that began with CR
	fsTrailerSkip         // in a trailer field line
	fsCut                 // the stream ends here
)

const (
	nameLength   = "content-length"
	nameEncoding = "transfer-encoding"
	maxLength    = 1<<63 - 1 // the largest Content-Length net/http reads
)

// framingParser follows the framing of the HTTP/1.x requests on one
// connection, byte for byte as net/http frames them (request line, header
// block to the blank line, then the body by Content-Length or by chunks
// and trailer), so that it always knows where the next request starts.
// Where net/http would refuse a request and close the connection, the
// parser need not agree with it. It allocates nothing.
type framingParser struct {
	st int

	// Request line.
	head      [10]byte // the line's first bytes ("OPTIONS * ", "POST ")
	headLen   int
	spaces    int
	proto     [9]byte // "HTTP/1.1" and a CR
	protoLen  int
	skipCRLF  int  // CR or LF bytes still skipped before the line (after a POST, as net/http does)
	post      bool // this request is a POST
	optsStar  bool // OPTIONS *: answered by net/http itself, never by the handler
	http10    bool
	malformed bool

	// Header block.
	match    int    // bytes of the header name matched so far
	name     string // nameLength or nameEncoding
	lengths  int    // Content-Length headers
	codings  int    // Transfer-Encoding headers
	phase    int    // in a value: 0 leading space, 1 the value, 2 trailing space
	length   uint64 // the Content-Length
	chunked  int    // bytes of "chunked" matched in a Transfer-Encoding value
	badValue bool   // the value being read is not a valid one
	reasons  uint16 // 1<<framingReason of every reason found

	// Body.
	remain uint64 // bytes left of the body or of the chunk
	digits int    // hex digits of the chunk-size

	// Outcome.
	blocks int64         // header blocks that reach the handler
	msgs   int64         // requests read to their end
	bad    int64         // the index (in blocks) of the refused request
	reason framingReason // why it was refused; framingOK: not refused
	at     int64         // the index of the request at which the stream was cut
}

// feed advances the parser over b, the next bytes of the connection, and
// returns how many of them the server may read: all of them, unless the
// stream is cut inside b (then p.st is fsCut).
func (p *framingParser) feed(b []byte) int {
	i := 0
	for i < len(b) {
		switch p.st {
		case fsBody, fsChunkData:
			n := min(uint64(len(b)-i), p.remain)
			i += int(n)
			p.remain -= n
			if p.remain == 0 {
				if p.st == fsBody {
					p.endMessage()
				} else {
					p.st = fsChunkCR
				}
			}
			continue
		case fsSkipLine, fsTrailerSkip:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				return len(b)
			}
			i += j + 1
			if p.st == fsSkipLine {
				p.st = fsLineStart
			} else {
				p.st = fsTrailerStart
			}
			continue
		case fsCut:
			return i
		case fsRequestLine:
			// The usual case, a whole line in b, at once.
			if p.headLen == 0 {
				for p.skipCRLF > 0 && i < len(b) && (b[i] == '\r' || b[i] == '\n') {
					p.skipCRLF--
					i++
				}
				if i == len(b) {
					continue
				}
				p.skipCRLF = 0
				if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
					p.wholeRequestLine(b[i : i+j])
					i += j + 1
					continue
				}
			}
		}
		c := b[i]
		i++
		switch p.st {
		case fsRequestLine:
			p.requestLine(c)
		case fsLineStart:
			switch c {
			case '\n':
				p.endHeaders()
			case '\r':
				p.st = fsLineCR
			case ' ', '\t':
				p.reasons |= 1 << framingFolded
				p.st = fsSkipLine
			default:
				switch lower(c) {
				case nameLength[0]:
					p.name, p.match, p.st = nameLength, 1, fsName
				case nameEncoding[0]:
					p.name, p.match, p.st = nameEncoding, 1, fsName
				default:
					p.st = fsSkipLine
				}
				if p.st == fsName {
					// The usual case, the name whole in b, at once.
					i = p.wholeName(b, i-1)
				}
			}
		case fsLineCR:
			if c == '\n' {
				p.endHeaders()
			} else {
				p.st = fsSkipLine // "\r..." is no header line: net/http refuses it
			}
		case fsName:
			switch {
			case c == '\n':
				p.st = fsLineStart // no colon: net/http refuses it
			case c == ':' && p.match == len(p.name):
				p.startValue()
			case p.match < len(p.name) && lower(c) == p.name[p.match]:
				p.match++
			default:
				p.st = fsSkipLine
			}
		case fsLength, fsEncoding:
			p.value(c)
		case fsValueCR:
			if c == '\n' {
				p.endValue()
				p.st = fsLineStart
			} else {
				p.badValue = true
				p.endValue()
				p.st = fsSkipLine
			}
		case fsChunkSize:
			switch {
			case hexDigit(c) >= 0 && p.digits < 16:
				p.remain = p.remain<<4 | uint64(hexDigit(c))
				p.digits++
			case p.digits == 0:
				return p.cutBody(i - 1)
			case c == ';':
				p.st = fsChunkExt
			case c == ' ' || c == '\t':
				p.st = fsChunkSpace
			case c == '\r':
				p.st = fsChunkLF
			default:
				return p.cutBody(i - 1)
			}
		case fsChunkSpace:
			switch c {
			case ' ', '\t':
			case '\r':
				p.st = fsChunkLF
			default:
				return p.cutBody(i - 1)
			}
		case fsChunkExt:
			switch c {
			case '\r':
				p.st = fsChunkLF
			case '\n':
				return p.cutBody(i - 1)
			}
		case fsChunkLF:
			if c != '\n' {
				return p.cutBody(i - 1)
			}
			p.digits = 0
			if p.remain == 0 {
				p.st = fsTrailerStart
			} else {
				p.st = fsChunkData
			}
		case fsChunkCR:
			if c != '\r' {
				return p.cutBody(i - 1)
			}
			p.st = fsChunkCRLF
		case fsChunkCRLF:
			if c != '\n' {
				return p.cutBody(i - 1)
			}
			p.st = fsChunkSize
		case fsTrailerStart:
			switch c {
			case '\n':
				p.endMessage()
			case '\r':
				p.st = fsTrailerCR
			default:
				p.st = fsTrailerSkip
			}
		case fsTrailerCR:
			if c == '\n' {
				p.endMessage()
			} else {
				p.st = fsTrailerSkip
			}
		}
		if p.st == fsCut {
			return i
		}
	}
	return len(b)
}

// requestLine reads byte c of a request line.
func (p *framingParser) requestLine(c byte) {
	if p.headLen == 0 && p.skipCRLF > 0 && (c == '\r' || c == '\n') {
		p.skipCRLF--
		return
	}
	p.skipCRLF = 0
	if c == '\n' {
		p.endRequestLine()
		return
	}
	if p.headLen < len(p.head) {
		p.head[p.headLen] = c
	}
	p.headLen++
	switch {
	case p.spaces < 2:
		if c == ' ' {
			p.spaces++
		}
	case p.protoLen < len(p.proto):
		p.proto[p.protoLen] = c
		p.protoLen++
	default:
		p.malformed = true // longer than any HTTP/1.x version
	}
}

// wholeName reads the header name starting at b[start], which may be
// p.name, when its colon is in b, and returns where to go on; otherwise
// it leaves the name to be read byte by byte.
func (p *framingParser) wholeName(b []byte, start int) int {
	end := min(len(b), start+len(p.name)+1)
	colon := bytes.IndexByte(b[start:end], ':')
	switch {
	case colon == len(p.name) && equalFoldASCII(b[start:start+colon], p.name):
		p.startValue()
		return start + colon + 1
	case colon >= 0 || end-start == len(p.name)+1:
		p.st = fsSkipLine // another name
		return start + 1
	}
	return start + 1
}

// equalFoldASCII is strings.EqualFold for ASCII bytes and a lower-case
// ASCII name.
func equalFoldASCII(b []byte, name string) bool {
	for i, c := range b {
		if lower(c) != name[i] {
			return false
		}
	}
	return true
}

// wholeRequestLine reads a request line given whole (without its LF) as
// requestLine would byte by byte.
func (p *framingParser) wholeRequestLine(line []byte) {
	p.headLen = len(line)
	copy(p.head[:], line)
	if s1 := bytes.IndexByte(line, ' '); s1 >= 0 {
		p.spaces = 1
		if s2 := bytes.IndexByte(line[s1+1:], ' '); s2 >= 0 {
			p.spaces = 2
			proto := line[s1+1+s2+1:]
			p.protoLen = copy(p.proto[:], proto)
			p.malformed = len(proto) > len(p.proto)
		}
	}
	p.endRequestLine()
}

// endRequestLine classifies the request line just read as net/http does:
// method, target and version are split at the first two spaces, and the
// version must be HTTP/1.x (ParseHTTPVersion; other versions are refused).
func (p *framingParser) endRequestLine() {
	proto := p.proto[:p.protoLen]
	if n := len(proto); n > 0 && proto[n-1] == '\r' {
		proto = proto[:n-1]
	}
	switch {
	case p.headLen == 0 || p.spaces < 2 || len(proto) != len("HTTP/1.1") || string(proto[:7]) != "HTTP/1.":
		p.malformed = true
	case proto[7] == '0':
		p.http10 = true
	case proto[7] < '1' || proto[7] > '9':
		p.malformed = true
	}
	head := p.head[:min(p.headLen, len(p.head))]
	p.post = bytes.HasPrefix(head, []byte("POST "))
	p.optsStar = string(head) == "OPTIONS * "
	p.st = fsLineStart
}

func (p *framingParser) startValue() {
	p.phase, p.badValue, p.chunked = 0, false, 0
	if p.name == nameLength {
		p.lengths++
		p.length = 0
		p.st = fsLength
	} else {
		p.codings++
		p.st = fsEncoding
	}
}

// value reads byte c of a Content-Length or Transfer-Encoding value, which
// net/http trims of spaces and tabs on both sides.
func (p *framingParser) value(c byte) {
	switch c {
	case '\n':
		p.endValue()
		p.st = fsLineStart
		return
	case '\r':
		p.st = fsValueCR
		return
	case ' ', '\t':
		if p.phase == 1 {
			p.phase = 2
		}
		return
	}
	if p.phase == 2 || p.badValue {
		p.badValue = true
		return
	}
	p.phase = 1
	if p.name == nameLength {
		d := uint64(c) - '0'
		if d > 9 || p.length > (maxLength-d)/10 {
			p.badValue = true
			return
		}
		p.length = p.length*10 + d
		return
	}
	if p.chunked >= len("chunked") || lower(c) != "chunked"[p.chunked] {
		p.badValue = true
		return
	}
	p.chunked++
}

// endValue records the Content-Length or Transfer-Encoding value just read.
func (p *framingParser) endValue() {
	if p.name == nameLength {
		if p.badValue || p.phase == 0 {
			p.reasons |= 1 << framingBadLength
		}
		return
	}
	if p.badValue || p.chunked != len("chunked") {
		p.reasons |= 1 << framingBadEncoding
	}
}

// endHeaders decides, at the blank line that ends a header block, how
// the body is framed, or that the request is refused.
func (p *framingParser) endHeaders() {
	if p.lengths > 0 && p.codings > 0 {
		p.reasons |= 1 << framingBoth
	}
	if p.lengths > 1 {
		p.reasons |= 1 << framingTwoLengths
	}
	if p.codings > 1 {
		p.reasons |= 1 << framingBadEncoding
	}
	if p.codings > 0 && p.http10 {
		p.reasons |= 1 << framingOldEncoding
	}
	if p.malformed {
		p.reasons |= 1 << framingMalformed
	}
	index := p.blocks
	if !p.optsStar {
		p.blocks++
	}
	if p.reasons != 0 {
		for r := framingBoth; r <= framingMalformed; r++ {
			if p.reasons&(1<<r) != 0 {
				p.reason = r
				break
			}
		}
		p.bad, p.at, p.st = index, index, fsCut
		return
	}
	switch {
	case p.codings > 0:
		p.remain, p.digits, p.st = 0, 0, fsChunkSize
	case p.length > 0:
		p.remain, p.st = p.length, fsBody
	default:
		p.endMessage()
	}
}

// endMessage readies the parser for the next request.
func (p *framingParser) endMessage() {
	p.msgs++
	skip := 0
	if p.post {
		skip = 4 // net/http skips up to 4 CR or LF after a POST (RFC 7230 §3.5)
	}
	blocks, msgs := p.blocks, p.msgs
	*p = framingParser{blocks: blocks, msgs: msgs, skipCRLF: skip}
}

// cutBody ends the stream at b's byte i, where a chunked body breaks its
// framing: net/http fails the body there too, and closes the connection.
func (p *framingParser) cutBody(i int) int {
	p.at = p.blocks - 1
	p.st = fsCut
	return i
}

// lower is c in lower case, if it is an ASCII letter.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hexDigit is the value of hex digit c, or -1.
func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// GuardFraming wraps the API listener so that a request with ambiguous
// framing is refused and its connection closed (see framingParser); the
// http.Server must also set ConnContext to FramingContext, and serve a
// *Server. With TLS, wrap the TLS listener: the parser reads the
// plaintext. (net/http then no longer sees a *tls.Conn: Request.TLS is nil
// and HTTP/2 cannot be negotiated, which the API does not offer.)
func GuardFraming(ln net.Listener) net.Listener { return framingListener{ln} }

type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn is a connection whose reads pass through a framingParser.
// Read is called by one goroutine at a time (net/http's connReader); the
// atomics are shared with the handler.
type framingConn struct {
	net.Conn
	p   framingParser
	cut bool // the parser cut the stream: nothing more is passed on
	at  int64

	refused atomic.Int64  // 1 + the index of the refused request; 0: none
	reason  atomic.Uint32 // its framingReason
	served  atomic.Int64  // requests the handler has begun (Server.ServeHTTP)
}

func (c *framingConn) Read(b []byte) (int, error) {
	if c.cut {
		return c.readCut(b)
	}
	n, err := c.Conn.Read(b)
	if n <= 0 {
		return n, err
	}
	k := c.p.feed(b[:n])
	if c.p.st != fsCut {
		return n, err
	}
	c.cut, c.at = true, c.p.at
	if c.p.reason != framingOK {
		c.reason.Store(uint32(c.p.reason))
		c.refused.Store(c.p.bad + 1)
	}
	if k == 0 {
		return c.readCut(b)
	}
	return k, nil
}

// readCut is Read past the cut. Once the server serves the request at the
// cut (and reads its body, or what follows it), the stream has ended:
// io.EOF. Before that — a read ahead while an earlier, pipelined request is
// served — it reads and drops what the client sends, as if it had sent
// nothing, so that the earlier request is not taken for abandoned.
func (c *framingConn) readCut(b []byte) (int, error) {
	for c.served.Load() <= c.at {
		if _, err := c.Conn.Read(b); err != nil {
			return 0, err
		}
	}
	return 0, io.EOF
}

// CloseWrite lets net/http half-close the connection (a FIN before the
// close) as it does for a bare *net.TCPConn or *tls.Conn.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type framingKey struct{}

// FramingContext is the http.Server's ConnContext for a listener from
// GuardFraming: it gives each request of the connection the connection's
// framing state.
func FramingContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// countRequest tells the connection's framing state that the server began
// serving its next request.
func countRequest(r *http.Request) {
	if fc, ok := r.Context().Value(framingKey{}).(*framingConn); ok {
		fc.served.Add(1)
	}
}

// refuseAmbiguousFraming answers the request 400 with Connection: close
// when the connection's parser refused it (see framingParser).
func (s *Server) refuseAmbiguousFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, ok := r.Context().Value(framingKey{}).(*framingConn); ok {
			if n := fc.refused.Load(); n != 0 && n == fc.served.Load() {
				w.Header().Set("Connection", "close")
				p := framingProblem(framingReason(fc.reason.Load()))
				s.writeProblem(w, r, p, p.Status)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
