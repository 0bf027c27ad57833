package httpapi

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// The export API: GET /v1/events/export and GET
// /v1/users/{user_id}/events/export stream every event a listing's filters
// select (app.Events.Export) as NDJSON or CSV, ending with a completion
// line, so that a client can tell a complete export from a cut one.

// The export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// The export media types.
const (
	ndjsonType = "application/x-ndjson"
	csvType    = "text/csv"
)

// CSVColumns is the CSV export's header row.
var CSVColumns = []string{"id", "user_id", "action", "status", "occurred_at", "recorded_at", "updated_at", "metadata", "legacy_system", "legacy_id"}

// ExportEncoder writes an export: one event per Event, then the completion
// line with Complete. NDJSON lines are events exactly as /v1 renders them,
// the last one {"export_complete":true,"count":N}; CSV (RFC 4180) starts
// with the CSVColumns header, holds metadata as one JSON column and times
// as /v1 does (RFC 3339, UTC), ends every line with CRLF, and ends with
// #export_complete,N. The
// activityd export command writes the same bytes through it.
type ExportEncoder struct {
	w       io.Writer
	csv     *csv.Writer // nil: NDJSON
	started bool
	buf     []byte
	rec     []string
}

// NewExportEncoder returns an encoder of format (FormatNDJSON or
// FormatCSV) writing to w.
func NewExportEncoder(w io.Writer, format string) (*ExportEncoder, error) {
	switch format {
	case FormatNDJSON:
		return &ExportEncoder{w: w}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		cw.UseCRLF = true // RFC 4180; metadata is compact JSON, which holds no raw line break to alter
		return &ExportEncoder{w: w, csv: cw, rec: make([]string, len(CSVColumns))}, nil
	}
	return nil, domain.Invalid("format", domain.CodeNotOneOf, "must be ndjson or csv")
}

// start writes the CSV header, once.
func (x *ExportEncoder) start() error {
	if x.started {
		return nil
	}
	x.started = true
	if x.csv != nil {
		return x.csv.Write(CSVColumns)
	}
	return nil
}

// Event writes e. CSV rows may stay buffered until Flush or Complete.
func (x *ExportEncoder) Event(e domain.Event) error {
	if err := x.start(); err != nil {
		return err
	}
	if x.csv == nil {
		x.buf = append(appendEvent(x.buf[:0], e), '\n')
		_, err := x.w.Write(x.buf)
		return err
	}
	r := x.rec
	r[0] = e.ID.String()
	r[1] = strconv.FormatInt(e.UserID, 10)
	r[2] = string(e.Action)
	r[3] = string(e.Status)
	r[4] = string(appendTime(nil, e.OccurredAt))
	r[5] = string(appendTime(nil, e.RecordedAt))
	r[6] = string(appendTime(nil, e.UpdatedAt))
	r[7] = "null"
	if len(e.Metadata) > 0 {
		r[7] = string(e.Metadata)
	}
	r[8], r[9] = "", ""
	if l, ok := e.ID.Legacy(); ok {
		r[8], r[9] = l.System.String(), strconv.FormatInt(l.N, 10)
	}
	return x.csv.Write(r)
}

// Flush writes what the encoder holds to its writer.
func (x *ExportEncoder) Flush() error {
	if x.csv == nil {
		return nil
	}
	x.csv.Flush()
	return x.csv.Error()
}

// Complete writes the completion line for n events (after the header
// when no event came) and flushes.
func (x *ExportEncoder) Complete(n int) error {
	if err := x.start(); err != nil {
		return err
	}
	if err := x.Flush(); err != nil {
		return err
	}
	var b []byte
	if x.csv != nil {
		b = strconv.AppendInt(append(b, "#export_complete,"...), int64(n), 10)
		b = append(b, "\r\n"...)
	} else {
		b = strconv.AppendInt(append(b, `{"export_complete":true,"count":`...), int64(n), 10)
		b = append(b, "}\n"...)
	}
	_, err := x.w.Write(b)
	return err
}

// exportListing is the export's query parameters: a listing's, without
// paging, and the format.
var exportListing = newListing([]string{"user_id", "action", "status", "from", "to", "time_field", "order", "format"}, "action")

// exportWriteTimeout is how long the client gets to take each page of an
// export: the server's write timeout is renewed page by page, so that a
// long export is not cut while a stalled client still is.
const exportWriteTimeout = time.Minute

// exportEvents is GET /v1/events/export and GET
// /v1/users/{user_id}/events/export.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request) {
	vals, err := listingParams(r, exportListing)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	format, err := exportFormat(vals.Get("format"), r.Header.Get("Accept"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	x := &exportStream{w: w, format: format, gzip: acceptsGzip(r.Header.Values("Accept-Encoding")), began: time.Now().UTC()}
	n, err := s.events.Export(r.Context(), principalFrom(r.Context()), listQuery(vals), x.event)
	switch {
	case err == nil:
		if err := x.complete(n); err != nil {
			s.log.DebugContext(r.Context(), "export: the client went away at the end", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	case !x.started:
		s.fail(w, r, err)
	case x.writeErr != nil || r.Context().Err() != nil:
		s.log.DebugContext(r.Context(), "export: the client went away", "method", r.Method, "path", r.URL.Path, "events", n, "err", err)
	default:
		// 200 is sent: all that is left is to stop without the completion
		// line, and to cut the connection rather than end the body
		// cleanly, so that the client sees the cut twice.
		s.log.ErrorContext(r.Context(), "export cut short", "method", r.Method, "path", r.URL.Path, "events", n, "err", err)
		x.flush()
		panic(http.ErrAbortHandler)
	}
}

// exportFormat picks the format: the format parameter, else the first of
// the two media types Accept names, else NDJSON.
func exportFormat(param, accept string) (string, error) {
	switch param {
	case FormatNDJSON, FormatCSV:
		return param, nil
	case "":
	default:
		return "", domain.Invalid("format", domain.CodeNotOneOf, "must be ndjson or csv")
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || refused(params["q"]) {
			continue
		}
		switch mt {
		case csvType:
			return FormatCSV, nil
		case ndjsonType:
			return FormatNDJSON, nil
		}
	}
	return FormatNDJSON, nil
}

// refused reports whether a q value is zero: "not acceptable".
func refused(q string) bool {
	f, err := strconv.ParseFloat(q, 64)
	return err == nil && f == 0
}

// acceptsGzip reports whether Accept-Encoding allows gzip.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
			if c := strings.ToLower(strings.TrimSpace(coding)); c != "gzip" && c != "x-gzip" {
				continue
			}
			q = strings.ReplaceAll(strings.TrimSpace(q), " ", "")
			v, _ := strings.CutPrefix(q, "q=")
			return !refused(v)
		}
	}
	return false
}

// exportStream writes one export response: the headers at the first
// event (or at the end, when none matched), the events through an
// ExportEncoder, a flush to the client after every page, and the
// completion line and the Export-Complete trailer at the end.
type exportStream struct {
	w        http.ResponseWriter
	format   string
	gzip     bool
	began    time.Time
	started  bool
	writeErr error

	rc   *http.ResponseController
	bw   *bufio.Writer
	zw   *gzip.Writer
	enc  *ExportEncoder
	rows int
}

// begin sends the headers and sets up the body's writers.
func (x *exportStream) begin() {
	x.started = true
	h := x.w.Header()
	ext, ct := ".ndjson", ndjsonType
	if x.format == FormatCSV {
		ext, ct = ".csv", csvType+"; charset=utf-8; header=present"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", `attachment; filename="activityd-events-`+x.began.Format("20060102T150405Z")+ext+`"`)
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept, Accept-Encoding")
	h.Set("X-Accel-Buffering", "no") // proxies: pass each page on as it comes
	h.Set("Trailer", "Export-Complete")
	if x.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	h.Del("Content-Length")
	x.rc = http.NewResponseController(x.w)
	x.renew()
	x.w.WriteHeader(http.StatusOK)
	x.bw = bufio.NewWriterSize(errWriter{x}, 32<<10)
	out := io.Writer(x.bw)
	if x.gzip {
		x.zw = gzip.NewWriter(x.bw)
		out = x.zw
	}
	x.enc, _ = NewExportEncoder(out, x.format) // the format is checked
}

// errWriter writes to the response, remembering a failure (the client is
// gone), which the handler tells from a store's.
type errWriter struct{ x *exportStream }

func (e errWriter) Write(b []byte) (int, error) {
	n, err := e.x.w.Write(b)
	if err != nil && e.x.writeErr == nil {
		e.x.writeErr = err
	}
	return n, err
}

// renew gives the client another exportWriteTimeout; a writer without
// deadlines (a test recorder) is fine as it is.
func (x *exportStream) renew() {
	_ = x.rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
}

// event writes one event, and flushes after every page.
func (x *exportStream) event(e domain.Event) error {
	if !x.started {
		x.begin()
	}
	if err := x.enc.Event(e); err != nil {
		return err
	}
	if x.rows++; x.rows%app.ExportPageSize == 0 {
		return x.flush()
	}
	return nil
}

// flush sends everything written so far to the client.
func (x *exportStream) flush() error {
	err := x.enc.Flush()
	if x.zw != nil {
		err = errors.Join(err, x.zw.Flush())
	}
	err = errors.Join(err, x.bw.Flush())
	if err == nil {
		if err = x.rc.Flush(); errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	x.renew()
	return err
}

// complete writes the completion line and the trailer.
func (x *exportStream) complete(n int) error {
	if !x.started {
		x.begin()
	}
	err := x.enc.Complete(n)
	if x.zw != nil {
		err = errors.Join(err, x.zw.Close())
	}
	err = errors.Join(err, x.bw.Flush())
	if err != nil {
		return err
	}
	x.w.Header().Set("Export-Complete", strconv.Itoa(n))
	return nil
}
