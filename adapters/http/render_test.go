package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// The reflection-based rendering the append encoder replaced: the encoder
// must write exactly what encode() writes for these.

// pageJSON is a listing.
type pageJSON struct {
	Items      []eventJSON `json:"items"`
	NextCursor *string     `json:"next_cursor"`
}

func renderPage(p domain.Page) pageJSON {
	out := pageJSON{Items: make([]eventJSON, len(p.Events))}
	for i, e := range p.Events {
		out.Items[i] = renderEvent(e)
	}
	if p.Next != nil {
		c := p.Next.Encode()
		out.NextCursor = &c
	}
	return out
}

// batchItemJSON is the outcome of one event of a batch: the status it
// would have had alone, and the event or the problem.
type batchItemJSON struct {
	Index  int        `json:"index"`
	Status int        `json:"status"`
	Event  *eventJSON `json:"event,omitempty"`
	Error  *problem   `json:"error,omitempty"`
}

type batchJSON struct {
	Items []batchItemJSON `json:"items"`
}

// sampleEvents are events with every field exercised: odd actions (older
// vocabularies, or hostile bytes a store might hold), times at each
// precision and far apart, and metadata with escapes.
func sampleEvents() []domain.Event {
	t := time.Date(2025, 10, 10, 18, 30, 0, 123456000, time.UTC)
	mds := []string{`{}`, `{"a":1}`, `{"ip":"10.0.0.1","nested":{"x":[1,2.5,"\u003cb\u003e"]},"s":"é\"\\\n"}`}
	actions := []string{"login", "upload_file", "a.b:c-d_e", "Ünïcode", "quote\"back\\slash", "ctl\x01\x1f\ttab", "bad\xffutf8", "line\u2028sep\u2029"}
	var out []domain.Event
	for i, a := range actions {
		out = append(out, domain.Event{
			ID:         domain.NewID(t.Add(time.Duration(i) * time.Microsecond)),
			UserID:     int64(1) << (i * 7),
			Action:     domain.Action(a),
			Status:     []domain.Status{domain.StatusPending, domain.StatusInProgress, domain.StatusDone}[i%3],
			OccurredAt: t.Add(-time.Duration(i) * 1000 * time.Hour).Truncate(time.Duration(1) * time.Second),
			RecordedAt: t.Add(time.Duration(i) * time.Microsecond),
			UpdatedAt:  t.Add(time.Duration(i) * time.Millisecond),
			Metadata:   json.RawMessage(mds[i%len(mds)]),
		})
	}
	out = append(out, domain.Event{ID: domain.NewID(t), UserID: 1, Action: "login", Status: domain.StatusPending,
		OccurredAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), RecordedAt: t, UpdatedAt: t.In(time.FixedZone("x", 3600))})
	// Imported events show their legacy ids.
	for _, l := range []domain.LegacyID{{System: domain.ActivityLogger, N: 7}, {System: domain.EventTracking, N: domain.MaxLegacyID}} {
		e := out[0]
		e.ID = l.ID()
		out = append(out, e)
	}
	return out
}

func TestAppendEventMatchesEncode(t *testing.T) {
	for _, e := range sampleEvents() {
		want, err := encode(renderEvent(e))
		if err != nil {
			t.Fatal(err)
		}
		if got := renderEventBytes(e); !bytes.Equal(got, want) {
			t.Errorf("event %q:\n got %s\nwant %s", e.Action, got, want)
		}
	}
}

func TestAppendPageMatchesEncode(t *testing.T) {
	evs := sampleEvents()
	cur := domain.Filter{TimeField: domain.ByRecordedAt, Order: domain.Desc}.CursorAfter(evs[2])
	for _, p := range []domain.Page{
		{},
		{Events: []domain.Event{}},
		{Events: evs[:1]},
		{Events: evs, Next: cur},
	} {
		want, err := encode(renderPage(p))
		if err != nil {
			t.Fatal(err)
		}
		got, err := renderPageBytes(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("page of %d:\n got %s (%v)\nwant %s", len(p.Events), got, err, want)
		}
	}
}

func TestAppendStringMatchesEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", "plain", "\x00", "\x7f", "<>&", "\u2028\u2029", "\xed\xa0\x80", "a\xc3", strings.Repeat("é", 40)}
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := encode(s)
		want = want[:len(want)-1]
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("login")
	f.Add("\x00\u2028\xff\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := encode(s)
		if got := appendString(nil, s); !bytes.Equal(got, want[:len(want)-1]) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want[:len(want)-1])
		}
	})
}

// TestBatchAnswerMatchesEncode: the batch answer the handler appends is
// exactly what encode() writes for the same items as batchJSON — created,
// already stored and refused items alike.
func TestBatchAnswerMatchesEncode(t *testing.T) {
	srv := NewServer(Config{
		Events:       app.NewEvents(memory.New(), testenv.NewClock(time.Date(2025, 10, 10, 18, 30, 0, 123456000, time.UTC)), domain.DefaultLimits()),
		AuthDisabled: true,
	})
	post := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	id := "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
	if rec := post("/v1/events", `{"id":"`+id+`","user_id":1,"action":"login"}`); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	rec := post("/v1/events/batch", `{"events":[{"user_id":1,"action":"upload_file","metadata":{"b":"<x>","a":[1,2.5]}},`+
		`{"id":"`+id+`","user_id":1,"action":"login"},{"id":"`+id+`","user_id":1,"action":"logout"},{"user_id":1,"action":"dance"}]}`)
	if rec.Code != 200 {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	var got batchJSON
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("batch answer does not decode as batchJSON: %v\n%s", err, rec.Body)
	}
	statuses := []int{}
	for _, it := range got.Items {
		statuses = append(statuses, it.Status)
	}
	if want := []int{201, 200, 409, 422}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	want, err := encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("batch answer:\n got %s\nwant %s", rec.Body, want)
	}
}
