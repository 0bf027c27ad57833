package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/activityd/activityd/test/binary"
)

// otlpReceiver is an OTLP/HTTP trace receiver (protobuf encoding, the
// exporter's default), keeping every span it is sent.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []span
}

// span is a received span with its service and ids in hex.
type span struct {
	Service, Name, TraceID, SpanID, ParentID string
	Kind                                     tracepb.Span_SpanKind
	Error                                    bool
	Attrs                                    map[string]string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces in application/x-protobuf", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(&req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range s.GetAttributes() {
					v := kv.GetValue()
					switch {
					case v.GetStringValue() != "":
						attrs[kv.GetKey()] = v.GetStringValue()
					default:
						attrs[kv.GetKey()] = strings.Trim(v.String(), " ")
					}
				}
				rc.spans = append(rc.spans, span{
					Service: service, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Error:    s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Attrs:    attrs,
				})
			}
		}
	}
}

// dbSystem is a client span's database: the semantic conventions'
// db.system.name, or the older db.system.
func (s span) dbSystem() string {
	if v := s.Attrs["db.system.name"]; v != "" {
		return v
	}
	return s.Attrs["db.system"]
}

// received returns the spans received so far.
func (rc *otlpReceiver) received() []span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]span(nil), rc.spans...)
}

// waitFor polls until ok holds for the spans received, for up to d.
func (rc *otlpReceiver) waitFor(t *testing.T, d time.Duration, what string, ok func([]span) bool) []span {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := rc.received()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; received %d spans:\n%s", what, d, len(got), dumpSpans(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dumpSpans(spans []span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString(s.Service + " | " + s.Name + " | trace " + s.TraceID + " span " + s.SpanID + " parent " + s.ParentID + "\n")
	}
	return b.String()
}

// TestOTLPExport: the running binary exports its spans over OTLP/HTTP
// to OTEL_EXPORTER_OTLP_ENDPOINT. A client's traceparent is continued,
// the server span is named by the route template, the SQL statements it
// ran are its children, and the spans still buffered at SIGTERM are
// flushed before the process exits.
func TestOTLPExport(t *testing.T) {
	rc := newOTLPReceiver(t)
	dir := t.TempDir()
	p := binary.Start(t, dir, "DATABASE_URL=sqlite:"+dir+"/a.db",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+rc.URL,
		"OTEL_SERVICE_NAME=activityd-otlp-test",
		// Buffered for a minute: only the flush at shutdown can send them.
		"OTEL_BSP_SCHEDULE_DELAY=60000")
	admin := p.BootstrapToken(t)
	if !strings.Contains(p.Logs(), `"exporter":"otlp/http"`) {
		t.Errorf("no \"exporting traces\" log line for otlp/http:\n%s", p.Logs())
	}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const bodyMarker = "body-marker-5b1e"
	req, _ := http.NewRequest("POST", p.Base+"/v1/events", strings.NewReader(`{"user_id":3,"action":"login","metadata":{"note":"`+bodyMarker+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Token "+admin)
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("POST /v1/events: %d", res.StatusCode)
	}
	id := binary.Call(t, "GET", p.Base+"/v1/events?user_id=3", admin, "").Body["items"].([]any)[0].(map[string]any)["id"].(string)
	binary.Want(t, binary.Call(t, "GET", p.Base+"/v1/events/"+id, admin, ""), 200)

	// The admin's "compute now", computed in process in the background:
	// wait for it (the window computed at start, then this one).
	binary.Want(t, binary.Call(t, "POST", p.Base+"/v1/activity-counts/runs", admin, ""), 202)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, _ := sample(binary.Call(t, "GET", p.Base+"/metrics", "", "").Raw, "activityd_count_windows_computed_total"); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the admin's run was not computed within 10s")
		}
	}

	time.Sleep(200 * time.Millisecond)
	if n := len(rc.received()); n != 0 {
		t.Fatalf("%d spans exported before shutdown with a 60s batch delay", n)
	}
	if err := p.Stop(t); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
	}
	spans := rc.received()

	var server *span
	for i, s := range spans {
		if s.TraceID == traceID && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			server = &spans[i]
		}
		if strings.Contains(s.Name, id) {
			t.Errorf("span name %q holds an id", s.Name)
		}
	}
	if server == nil {
		t.Fatalf("no server span in the client's trace %s:\n%s", traceID, dumpSpans(spans))
	}
	if server.Name != "POST /v1/events" || server.ParentID != parentID || server.Service != "activityd-otlp-test" {
		t.Errorf("server span %+v: want name \"POST /v1/events\", parent %s, service activityd-otlp-test", *server, parentID)
	}
	var sqlChildren int
	for _, s := range spans {
		if s.TraceID == traceID && s.ParentID == server.SpanID && s.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.dbSystem() == "sqlite" {
			sqlChildren++
		}
	}
	if sqlChildren == 0 {
		t.Errorf("no SQL client span under the server span:\n%s", dumpSpans(spans))
	}
	var named bool
	for _, s := range spans {
		named = named || s.Name == "GET /v1/events/{id}"
		for k, v := range s.Attrs {
			if strings.Contains(v, admin) || strings.Contains(v, bodyMarker) {
				t.Errorf("span %q attribute %s holds the token or the request body: %q", s.Name, k, v)
			}
		}
	}
	// The in-process job: the admin's window is computed under the
	// request's span, with its SQL beneath.
	var run, compute *span
	for i, s := range spans {
		if s.Name == "POST /v1/activity-counts/runs" {
			run = &spans[i]
		}
	}
	for i, s := range spans {
		if run != nil && s.Name == "count-window compute" && s.ParentID == run.SpanID {
			compute = &spans[i]
		}
	}
	if run == nil || compute == nil {
		t.Errorf("no count-window compute span under the admin's request:\n%s", dumpSpans(spans))
	} else {
		var sql bool
		for _, s := range spans {
			sql = sql || (s.ParentID == compute.SpanID && s.dbSystem() == "sqlite")
		}
		if !sql {
			t.Errorf("no SQL span under the in-process compute span:\n%s", dumpSpans(spans))
		}
	}
	if strings.Contains(p.Logs(), admin) || strings.Contains(p.Logs(), bodyMarker) {
		t.Errorf("the log holds the token or the request body:\n%s", p.Logs())
	}
	if !named {
		t.Errorf("no span named by the route template GET /v1/events/{id}:\n%s", dumpSpans(spans))
	}
}
