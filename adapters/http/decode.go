package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/domain"
)

// Request bodies are decoded in three steps: readBody checks the
// transport (content type, size, UTF-8) and that the body is exactly one
// JSON value; members splits an object into its members, rejecting
// duplicates; and a per-request decoder checks each member's name and
// JSON type. Every problem found at these steps is a 400 naming the field
// (events[3].user_id); rules on values are left to the domain (422).

// maxFieldProblems caps how many field problems one 400 lists.
const maxFieldProblems = 50

// The rules a request's shape can break (a 400), beside the domain's
// codes for the rules its values break (a 422).
const (
	codeWrongType    domain.Code = "wrong_type"    // a member or body of another JSON type
	codeUnknownField domain.Code = "unknown_field" // a member or parameter the resource does not take
	codeRepeated     domain.Code = "repeated"      // given more than once
)

var errEmptyBody = badRequest("the request body is empty; send a JSON object")

// readBody reads the request body as exactly one JSON value. It holds
// the body's size of the server's body budget (bodyBudget) until the
// caller calls done, deferred: what is decoded from a body is about as
// large as the body and lives until the request is answered (a batch's
// events until they are stored). On an error it has given it back.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, done func(), err error) {
	return s.readJSON(w, r, false)
}

// readJSON is readBody; forms says whether the route also takes form
// bodies (readFormOrJSON), for the 415's advice.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, forms bool) (body []byte, done func(), err error) {
	if r.ContentLength == 0 {
		return nil, nil, errEmptyBody // whatever the Content-Type: there is nothing to read
	}
	if _, _, err := checkContentType(r, forms); err != nil {
		return nil, nil, err
	}
	body, release, err := s.readRaw(w, r)
	if err != nil {
		return nil, nil, err
	}
	if err := checkJSON(body); err != nil {
		release()
		return nil, nil, err
	}
	return body, release, nil
}

// checkJSON checks that body is exactly one JSON value, in UTF-8.
func checkJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody
	}
	if !utf8.Valid(body) {
		return badRequest("the request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return badRequest(syntaxDetail(body, "the request body"))
	}
	return nil
}

// readRaw reads the request body, at most the server's body limit (413
// beyond it), holding its size of the body budget until done is called.
// On an error it has given it back.
func (s *Server) readRaw(w http.ResponseWriter, r *http.Request) (body []byte, done func(), err error) {
	if r.ContentLength > s.maxBody {
		return nil, nil, &http.MaxBytesError{Limit: s.maxBody}
	}
	size := r.ContentLength
	if size < 0 { // chunked: at most the limit
		size = s.maxBody
	}
	release, err := s.bodies.reserve(r.Context(), size)
	if err != nil {
		return nil, nil, err
	}
	body, err = readAll(http.MaxBytesReader(w, r.Body, s.maxBody), r.ContentLength)
	if err != nil {
		release()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, err
		}
		return nil, nil, badRequest("the request body could not be read")
	}
	return body, release, nil
}

// decodeBody reads the request body (readBody) and decodes it with decode,
// which reports problems of shape to fe: any is a 400 saying the body is
// not a valid what. On success the body's bytes stay reserved until done
// is called, deferred.
func decodeBody[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, decode func(json.RawMessage, *fieldErrors) T) (v T, done func(), err error) {
	body, done, err := s.readBody(w, r)
	return decodeRead(body, done, err, what, decode)
}

// decodeFormBody is decodeBody on a route that also takes form bodies
// (readFormOrJSON): a form is turned into the JSON object it stands for,
// which decode then decodes as it decodes a JSON body.
func decodeFormBody[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, form formFields, decode func(json.RawMessage, *fieldErrors) T) (v T, done func(), err error) {
	body, done, err := s.readFormOrJSON(w, r, what, form)
	return decodeRead(body, done, err, what, decode)
}

// decodeRead decodes a body read by readBody or readFormOrJSON (body,
// done, err) with decode.
func decodeRead[T any](body []byte, done func(), err error, what string, decode func(json.RawMessage, *fieldErrors) T) (v T, _ func(), _ error) {
	if err != nil {
		return v, nil, err
	}
	fe := &fieldErrors{}
	v = decode(body, fe)
	if err := fe.err("the request body is not a valid " + what); err != nil {
		done()
		var zero T
		return zero, nil, err
	}
	return v, done, nil
}

// syntaxDetail explains why body, which is what ("the request body"), is
// not exactly one JSON value.
func syntaxDetail(body []byte, what string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	err := dec.Decode(&v)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of " + what
	case err != nil:
		return "malformed JSON"
	}
	return fmt.Sprintf("unexpected data after the JSON value at byte %d; send exactly one JSON object", dec.InputOffset())
}

// The form media types DRF's default parsers took (FormParser,
// MultiPartParser), which the activity-logger routes take too.
const (
	mediaForm      = "application/x-www-form-urlencoded"
	mediaMultipart = "multipart/form-data"
)

// checkContentType accepts application/json and application/*+json, in
// UTF-8 (the only charset JSON may use), without a content coding; with
// forms, also the form media types (a urlencoded form in UTF-8). It
// returns the media type and its parameters.
func checkContentType(r *http.Request, forms bool) (mt string, params map[string]string, err error) {
	send := "send application/json"
	if forms {
		send = "send application/json, " + mediaForm + " or " + mediaMultipart
	}
	unsupported := func(header, detail string) error {
		return &httpError{status: http.StatusUnsupportedMediaType, slug: slugUnsupportedMediaType, detail: detail,
			fields: []fieldProblem{{Field: header, Code: domain.CodeUnsupported, Message: detail}}}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return "", nil, unsupported("Content-Encoding", "unsupported Content-Encoding "+strconv.Quote(ce)+": send the body uncompressed")
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil, unsupported("Content-Type", "missing Content-Type: "+send)
	}
	mt, params, err = mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, unsupported("Content-Type", "malformed Content-Type: "+send)
	}
	isJSON := mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
	isForm := forms && (mt == mediaForm || mt == mediaMultipart)
	if !isJSON && !isForm {
		return "", nil, unsupported("Content-Type", "unsupported Content-Type "+strconv.Quote(mt)+": "+send)
	}
	// A multipart body's parts say their own charset (readMultipart).
	if cs, ok := params["charset"]; ok && mt != mediaMultipart && !isUTF8(cs) {
		return "", nil, unsupported("Content-Type", "unsupported charset "+strconv.Quote(cs)+": "+mt+" must be UTF-8")
	}
	return mt, params, nil
}

func isUTF8(charset string) bool {
	return strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8")
}

// formFields are the fields a route reads from a form body: text fields,
// read as strings, and JSON fields, whose text is parsed as JSON (DRF's
// JSONField in a form); an empty JSON field is not sent. Any other field
// is ignored, as it is in a JSON body.
type formFields struct{ text, json []string }

func (ff formFields) reads(name string) bool {
	return slices.Contains(ff.text, name) || slices.Contains(ff.json, name)
}

// formField is one field of a form body.
type formField struct {
	name, value string
	file        string // a multipart file part's file name; "" for a text field
}

// readFormOrJSON reads the body of a route that takes forms as well as
// JSON (the activity-logger routes, as DRF's default parsers did). A JSON
// body is read by readBody. A form (application/x-www-form-urlencoded or
// multipart/form-data) is read whole, bounded as a JSON body is (the
// body limit, 413, and the body budget), and never touches the disk; it
// is turned into the JSON object it stands for (formJSON), for the
// route's JSON decoder. Problems with its fields are a 400 saying the
// body is not a valid what, naming the field.
func (s *Server) readFormOrJSON(w http.ResponseWriter, r *http.Request, what string, form formFields) (body []byte, done func(), err error) {
	mt, params, ctErr := checkContentType(r, true)
	if ctErr != nil || (mt != mediaForm && mt != mediaMultipart) {
		return s.readJSON(w, r, true) // the empty body's 400 first, as ever; then the same 415
	}
	raw, release, err := s.readRaw(w, r)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	fe := &fieldErrors{}
	var fields []formField
	if mt == mediaForm {
		fields, err = readURLEncoded(raw, fe)
	} else {
		fields, err = readMultipart(raw, params["boundary"], fe)
	}
	if err != nil {
		return nil, nil, err
	}
	body = formJSON(fields, form, fe)
	if err := fe.err("the request body is not a valid " + what); err != nil {
		return nil, nil, err
	}
	return body, release, nil
}

// readURLEncoded splits an application/x-www-form-urlencoded body into
// its fields, in order, as Django did: fields separated by "&", a field
// without "=" has an empty value, "+" is a space.
func readURLEncoded(raw []byte, fe *fieldErrors) ([]formField, error) {
	var fields []formField
	for pair := range strings.SplitSeq(string(raw), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, badRequest("malformed form body: a field name is not URL-encoded: " + err.Error())
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, badRequest("malformed form body: field " + strconv.Quote(name) + " is not URL-encoded: " + err.Error())
		}
		fields = append(fields, formField{name: name, value: value})
	}
	return fields, nil
}

// readMultipart splits a multipart/form-data body, already read, into its
// fields, in order. A part without a form field name is skipped; a file
// part is kept with its file name (formJSON decides). A text part that
// names a charset other than UTF-8 is reported.
func readMultipart(raw []byte, boundary string, fe *fieldErrors) ([]formField, error) {
	if len(raw) == 0 {
		return nil, nil // Django read an empty body as an empty form
	}
	if boundary == "" {
		return nil, badRequest("malformed multipart/form-data body: the Content-Type has no boundary parameter")
	}
	mr := multipart.NewReader(bytes.NewReader(raw), boundary)
	var fields []formField
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			return nil, badRequest("malformed multipart/form-data body: " + strings.TrimPrefix(err.Error(), "multipart: "))
		}
		value, err := io.ReadAll(p)
		if err != nil {
			return nil, badRequest("malformed multipart/form-data body: " + strings.TrimPrefix(err.Error(), "multipart: "))
		}
		name := p.FormName()
		if name == "" {
			continue
		}
		if file := p.FileName(); file != "" {
			fields = append(fields, formField{name: name, file: file})
			continue
		}
		if ct := p.Header.Get("Content-Type"); ct != "" {
			if _, ps, err := mime.ParseMediaType(ct); err == nil && ps["charset"] != "" && !isUTF8(ps["charset"]) {
				fe.add(fieldName("", name), domain.CodeUnsupported, "is in charset %q: send UTF-8", ps["charset"])
			}
		}
		fields = append(fields, formField{name: name, value: string(value)})
	}
}

// formJSON turns a form's fields into the JSON object a JSON client would
// have sent: each text field a route reads as a string, each JSON field
// as the JSON its text holds (nothing when it is empty). A field given
// more than once is reported (as a JSON member given twice is), whether
// the route reads it or not; so is text that is not UTF-8, JSON text
// that is not JSON, and a file part in place of a field the route reads.
// Other fields and file parts are ignored, as unknown JSON members are.
func formJSON(fields []formField, form formFields, fe *fieldErrors) []byte {
	seen := map[string]int{}
	for _, f := range fields {
		if f.file == "" {
			seen[f.name]++
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	add := func(name string, value []byte) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		n, _ := json.Marshal(name)
		b.Write(n)
		b.WriteByte(':')
		b.Write(value)
	}
	for _, f := range fields {
		field := fieldName("", f.name)
		switch {
		case f.file != "":
			if form.reads(f.name) {
				fe.add(field, codeWrongType, "must be a text field, not a file (%q)", f.file)
			}
			continue
		case seen[f.name] > 1:
			fe.add(field, codeRepeated, "is given more than once")
			seen[f.name] = 0 // reported once
			continue
		case seen[f.name] == 0 || !form.reads(f.name): // reported, or ignored
			continue
		case !utf8.ValidString(f.value):
			fe.add(field, domain.CodeMalformed, "is not valid UTF-8")
			continue
		}
		if slices.Contains(form.text, f.name) {
			v, _ := json.Marshal(f.value)
			add(f.name, v)
			continue
		}
		if f.value == "" {
			continue // an empty JSON field is not sent
		}
		if v := []byte(f.value); json.Valid(v) {
			add(f.name, v)
		} else {
			fe.add(field, domain.CodeMalformed, "must be JSON text, such as {\"ip\": \"192.168.0.1\"}: %s", syntaxDetail(v, "the field"))
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

// member is one name/value pair of a JSON object.
type member struct {
	name  string
	value json.RawMessage
}

// fieldErrors collects the 400-level problems of one request body.
type fieldErrors struct {
	list  []fieldProblem
	total int
}

func (fe *fieldErrors) add(field string, code domain.Code, format string, args ...any) {
	fe.total++
	if len(fe.list) < maxFieldProblems {
		fe.list = append(fe.list, fieldProblem{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
}

// err returns the 400 for the problems collected, or nil. what says
// which input they are in.
func (fe *fieldErrors) err(what string) error {
	if fe.total == 0 {
		return nil
	}
	detail := what + ": "
	if fe.total == 1 {
		detail += fe.list[0].Field + " " + fe.list[0].Message
	} else {
		detail += fmt.Sprintf("%d problems, see errors", fe.total)
		if fe.total > len(fe.list) {
			detail += fmt.Sprintf(" (the first %d are listed)", len(fe.list))
		}
	}
	return badRequest(detail, fe.list...)
}

// jsonKind names the JSON type of a valid JSON value.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw json.RawMessage) bool { return jsonKind(raw) == "null" }

// members splits a valid JSON value into its members. A value that is not
// an object is reported (as "(body)" at the top, else under path without
// its dot) and ok is false; a name given twice is reported under
// path+name.
func members(raw json.RawMessage, path string, fe *fieldErrors) (ms []member, ok bool) {
	if k := jsonKind(raw); k != "an object" {
		field := strings.TrimSuffix(path, ".")
		if field == "" {
			field = "(body)"
		}
		fe.add(field, codeWrongType, "must be a JSON object, not %s", k)
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if seen[name] {
			fe.add(fieldName(path, name), codeRepeated, "is given more than once")
			continue
		}
		seen[name] = true
		ms = append(ms, member{name: name, value: v})
	}
	return ms, true
}

// fieldName is how a problem names member name under path; an empty name
// is shown as "" so that the field is never blank.
func fieldName(path, name string) string {
	if name == "" {
		return path + `""`
	}
	return path + name
}

// stringMember decodes a member that must hold a string (or null, read as
// "not sent").
func stringMember(m member, path string, fe *fieldErrors) (string, bool) {
	switch k := jsonKind(m.value); k {
	case "a string":
		var s string
		if err := json.Unmarshal(m.value, &s); err != nil {
			fe.add(path+m.name, codeWrongType, "must be a string")
			return "", false
		}
		return s, true
	case "null":
		return "", true
	default:
		fe.add(path+m.name, codeWrongType, "must be a string, not %s", k)
		return "", false
	}
}

// userIDMember decodes user_id: a JSON number (or null, "not sent"). A
// number no int64 holds (1.5, 1e3, 2^63) is sent as 0, for the domain to
// reject with every other value that is not a positive integer.
func userIDMember(m member, path string, fe *fieldErrors) int64 {
	switch k := jsonKind(m.value); k {
	case "a number":
		n, err := strconv.ParseInt(string(bytes.TrimSpace(m.value)), 10, 64)
		if err != nil {
			return 0 // sent, but no int64: not a positive integer
		}
		return n
	case "null":
		return 0
	default:
		fe.add(path+m.name, codeWrongType, "must be an integer, not %s", k)
		return 0
	}
}

// decodeNewEvent decodes one event of a request body: the whole body of
// POST /v1/events (path ""), or events[i] of a batch (path "events[i].").
// in.Sent marks the members sent with a non-null value, so that one sent
// empty is the domain's to reject rather than read as absent.
func decodeNewEvent(raw json.RawMessage, path string, fe *fieldErrors) domain.NewEvent {
	var in domain.NewEvent
	ms, ok := members(raw, path, fe)
	if !ok {
		return in
	}
	for _, m := range ms {
		var sent domain.Members
		switch m.name {
		case "id":
			in.ID, _ = stringMember(m, path, fe)
			sent = domain.MemberID
		case "user_id":
			in.UserID = userIDMember(m, path, fe)
			sent = domain.MemberUserID
		case "action":
			in.Action, _ = stringMember(m, path, fe)
			sent = domain.MemberAction
		case "occurred_at":
			in.OccurredAt, _ = stringMember(m, path, fe)
			sent = domain.MemberOccurredAt
		case "metadata":
			// Any JSON value: the domain decides what metadata may be (an
			// object) and says so with a 422.
			in.Metadata = m.value
			sent = domain.MemberMetadata
		default:
			fe.add(fieldName(path, m.name), codeUnknownField, "is not a known field (known: id, user_id, action, occurred_at, metadata)")
		}
		if !isNull(m.value) {
			in.Sent |= sent
		}
	}
	return in
}

// decodeEvent decodes the body of POST /v1/events.
func decodeEvent(raw json.RawMessage, fe *fieldErrors) domain.NewEvent {
	return decodeNewEvent(raw, "", fe)
}

// decodeBatch decodes {"events":[...]}. It returns the raw items; a
// missing or null events member is an empty batch (the use case rejects
// it with a 422).
func decodeBatch(raw json.RawMessage, fe *fieldErrors) []json.RawMessage {
	ms, ok := members(raw, "", fe)
	if !ok {
		return nil
	}
	var items []json.RawMessage
	for _, m := range ms {
		switch m.name {
		case "events":
			switch k := jsonKind(m.value); k {
			case "an array":
				if err := json.Unmarshal(m.value, &items); err != nil {
					fe.add("events", codeWrongType, "must be an array of event objects")
				}
			case "null":
			default:
				fe.add("events", codeWrongType, "must be an array of event objects, not %s", k)
			}
		default:
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (known: events)")
		}
	}
	return items
}

// decodeStatusChange decodes {"status":"..."}.
func decodeStatusChange(raw json.RawMessage, fe *fieldErrors) string {
	ms, ok := members(raw, "", fe)
	if !ok {
		return ""
	}
	var status string
	for _, m := range ms {
		switch m.name {
		case "status":
			status, _ = stringMember(m, "", fe)
		default:
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (known: status)")
		}
	}
	return status
}

// The query parameters of the event listings.
var listParams = []string{"user_id", "action", "status", "from", "to", "time_field", "order", "limit", "cursor"}

// parseQuery parses the raw query string strictly: it must be well-formed,
// name only the allowed parameters, and give each at most once (only
// repeatable ones more often).
func parseQuery(r *http.Request, allowed []string, repeatable ...string) (url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: " + err.Error())
	}
	fe := &fieldErrors{}
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		switch {
		case !slices.Contains(allowed, name):
			if len(allowed) == 0 {
				fe.add(fieldName("", name), codeUnknownField, "is not a known query parameter (this resource takes none)")
			} else {
				fe.add(fieldName("", name), codeUnknownField, "is not a known query parameter (known: %s)", strings.Join(allowed, ", "))
			}
		case len(vals[name]) > 1 && !slices.Contains(repeatable, name):
			fe.add(name, codeRepeated, "must be given at most once")
		}
	}
	if err := fe.err("the query string is not valid"); err != nil {
		return nil, err
	}
	return vals, nil
}

// listQuery turns the parameters of an event listing into a domain.Query.
// An empty parameter is "not sent". action may be repeated and may hold a
// comma-separated list.
func listQuery(vals url.Values) domain.Query {
	q := domain.Query{UserID: vals.Get("user_id"), Actions: actions(vals["action"])}
	q.Status = vals.Get("status")
	q.From = vals.Get("from")
	q.To = vals.Get("to")
	q.TimeField = vals.Get("time_field")
	q.Order = vals.Get("order")
	q.Limit = vals.Get("limit")
	q.Cursor = vals.Get("cursor")
	return q
}

// actions splits the action parameters, each a comma-separated list
// ("login, logout").
func actions(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, a := range strings.Split(v, ",") {
			if a = strings.Trim(a, " "); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// listing is the query parameters of a /v1 listing, with and without
// user_id (which the /v1/users/{user_id}/... routes take from the path).
type listing struct{ params, userParams, repeatable []string }

func newListing(params []string, repeatable ...string) listing {
	user := slices.DeleteFunc(slices.Clone(params), func(p string) bool { return p == "user_id" })
	return listing{params: params, userParams: user, repeatable: repeatable}
}

// The /v1 listings.
var (
	eventListing = newListing(listParams, "action")
	countListing = newListing(countParams)
)

// listingParams reads the parameters of a /v1 listing l: the allowed ones
// from the query string (parseQuery) and, on the /v1/users/{user_id}/...
// routes, user_id from the path, where the query string may not name it.
func listingParams(r *http.Request, l listing) (url.Values, error) {
	if rc := chi.RouteContext(r.Context()); rc == nil || !slices.Contains(rc.URLParams.Keys, "user_id") {
		return parseQuery(r, l.params, l.repeatable...)
	}
	user, err := pathUser(r)
	if err != nil {
		return nil, err
	}
	vals, err := parseQuery(r, l.userParams, l.repeatable...)
	if err != nil {
		return nil, err
	}
	vals.Set("user_id", user)
	return vals, nil
}

// errNoSuchUser answers a path naming a user that cannot exist.
var errNoSuchUser = &httpError{status: http.StatusNotFound, slug: slugNotFound,
	detail: "there is no such user: a user id is a positive integer"}

// pathUser reads the {user_id} path segment: a positive int64 in
// canonical decimal form, or errNoSuchUser (a 404: no such resource).
// It returns the segment, for the use case's query.
func pathUser(r *http.Request) (string, error) {
	raw := chi.URLParam(r, "user_id")
	if _, ok := domain.ParseUserID(raw); !ok {
		return "", errNoSuchUser
	}
	return raw, nil
}
