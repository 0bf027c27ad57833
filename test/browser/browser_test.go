// Package browser drives the web UI (adapters/http/web) of the real
// activityd binary in headless Chromium, the way a person would: sign in,
// record an event, filter, advance its status, see the count chart, see an
// API error, sign out. Screenshots of each step go to test/artifacts/browser
// (ignored by git, kept by CI as artifacts).
//
// Chromium is /usr/bin/chromium, or CHROMIUM_PATH. Without it the test
// skips, except where CI is set, where it fails (.ci/run installs it).
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/activityd/activityd/test/binary"
)

// adminToken is BOOTSTRAP_ADMIN_TOKEN of the binary under test.
const adminToken = "browser-admin-token-0123456789abcdef"

// artifacts is where the screenshots go, relative to this package.
const artifacts = "../artifacts/browser"

// chromiumPath finds the browser, or skips (fails under CI) without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM_PATH=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found (CI is set, so this fails rather than skips): install it (apt-get install chromium) or set CHROMIUM_PATH")
	}
	t.Skip("Chromium not found: install it (apt-get install chromium) or set CHROMIUM_PATH")
	return ""
}

// TestMain removes the binary after the tests, if TestWebUI got as far as
// building it (it skips first without Chromium).
func TestMain(m *testing.M) { binary.MainOnDemand(m) }

// call sends one API request with the admin token and decodes the answer.
func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	r := binary.Call(t, method, url, adminToken, body)
	if out != nil {
		if err := json.Unmarshal([]byte(r.Raw), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, r.Status, r.Raw, err)
		}
	}
	return r.Status
}

// browser is one headless Chromium tab with the errors it reported.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

// newBrowser starts headless Chromium with a fresh profile. JavaScript
// exceptions and security messages (CSP violations) are collected.
func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *log.EventEntryAdded:
			if e.Entry.Source == log.EntrySourceSecurity || e.Entry.Source == log.EntrySourceJavascript {
				msg = string(e.Entry.Source) + ": " + e.Entry.Text
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errs = append(b.errs, msg)
			b.mu.Unlock()
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium at %s: %v", path, err)
	}
	b.ctx = ctx
	return b
}

// do runs steps with a bound on how long they may take.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\npage errors: %v", what, err, b.pageErrors())
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func (b *browser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			problem := eval[string](t, b, `document.getElementById('problem').innerText`)
			t.Fatalf("%s: %s still false after 10s (err %v); error region: %q; page errors: %v", what, expr, err, problem, b.pageErrors())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fill sets the value of the form control with this id, as typing would
// leave it (chromedp.SetValue cannot set an empty value).
func fill(id, value string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(id)
	v, _ := json.Marshal(value)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById(%s); e.value = %s;
		e.dispatchEvent(new Event('input', {bubbles: true})); })()`, q, v))
}

// shot saves a full-page PNG screenshot as test/artifacts/browser/name.png.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifacts, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// listed is true once the events list is loaded (no list request in flight).
const listed = `document.getElementById('events').getAttribute('aria-busy') === 'false'`

// TestWebUI walks through the UI against the real binary on the memory
// store, counting every minute so that a count window closes during the
// test.
func TestWebUI(t *testing.T) {
	began := time.Now()
	chromium := chromiumPath(t)
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}

	var b *browser
	var wg sync.WaitGroup
	var buildErr error
	wg.Add(1)
	go func() { // build the binary while Chromium starts
		defer wg.Done()
		_, buildErr = binary.Build()
	}()
	b = newBrowser(t, chromium)
	wg.Wait()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	// On a free loopback port, as test/e2e does.
	srv := binary.Serve.Within(30*time.Second).Start(t, t.TempDir(),
		"DATABASE_URL=memory:",
		"BOOTSTRAP_ADMIN_TOKEN="+adminToken,
		"COUNT_SCHEDULE=* * * * *",
		"COUNT_SETTLE=1s",
	)
	ready := time.Now()

	// The page is served without credentials, with a CSP and no inline code.
	res, err := http.Get(srv.Base + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d, CSP %q", res.StatusCode, res.Header.Get("Content-Security-Policy"))
	}

	// 1. Sign in with the admin token.
	b.do(t, "open the UI", chromedp.Navigate(srv.Base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot(t, "01-signin")
	b.do(t, "sign in",
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("app")),
	)
	if got := eval[string](t, b, `sessionStorage.getItem('activityd.token') || ''`); got != adminToken {
		t.Fatalf("sessionStorage token %q after sign-in", got)
	}
	if got := eval[int](t, b, `localStorage.length + document.cookie.length`); got != 0 {
		t.Fatalf("the token leaked outside sessionStorage (localStorage/cookies: %d)", got)
	}

	// 2. Record two events for user 7; both appear in the list.
	record := func(action, metadata string) {
		t.Helper()
		b.do(t, "record "+action,
			fill("rec-user", "7"),
			fill("rec-action", action),
			fill("rec-metadata", metadata),
			chromedp.WaitEnabled(chromedp.CSS("#record button[type=submit]")),
			chromedp.Click(chromedp.CSS("#record button[type=submit]")),
		)
		b.waitJS(t, "recorded "+action, `document.getElementById('notice').innerText.includes('Recorded `+action+` for user 7')`)
	}
	record("upload_file", `{"file":"report.pdf"}`)
	record("login", `{"device":"Chrome"}`)
	b.waitJS(t, "both events listed", `document.querySelectorAll('#events-body tr').length === 2 &&
		document.querySelector('#events-body tr[data-action="login"][data-status="PENDING"]') !== null`)
	b.shot(t, "02-recorded")

	// 3. Filter by action: the matching event alone; a non-matching one: none.
	b.do(t, "filter by login",
		fill("f-action", "login"),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "only login listed", listed+` && (() => { const rows = [...document.querySelectorAll('#events-body tr')];
		return rows.length === 1 && rows[0].dataset.action === 'login'; })()`)
	b.shot(t, "03-filtered")
	b.do(t, "filter by logout",
		fill("f-action", "logout"),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "nothing listed", listed+` && document.querySelectorAll('#events-body tr').length === 0 && !document.getElementById('events-empty').hidden`)
	b.do(t, "filter by status and time range",
		fill("f-action", ""),
		chromedp.Evaluate[chromedp.Void](`(() => { document.getElementById('f-status').value = 'PENDING'; const p = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
			document.getElementById('f-from').value = p(new Date(Date.now() - 3600e3));
			document.getElementById('f-to').value = p(new Date(Date.now() + 3600e3)); })()`),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "both listed in the last hour", listed+` && document.querySelectorAll('#events-body tr').length === 2`)

	// 4. Advance the login event: PENDING → IN_PROGRESS by click; the row
	// then offers DONE alone, which the keyboard takes.
	b.do(t, "clear filters",
		chromedp.Click(chromedp.CSS(`#filters button[type=reset]`)),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "unfiltered", listed+` && document.querySelectorAll('#events-body tr').length === 2`)
	b.do(t, "advance to IN_PROGRESS",
		chromedp.Click(chromedp.CSS(`#events-body tr[data-action="login"] button.advance[data-next="IN_PROGRESS"]`)))
	b.waitJS(t, "IN_PROGRESS, offering DONE", `(() => { const r = document.querySelector('#events-body tr[data-action="login"]');
		const bs = r.querySelectorAll('button.advance');
		return r.dataset.status === 'IN_PROGRESS' && bs.length === 1 && bs[0].dataset.next === 'DONE'; })()`)
	b.shot(t, "04-in-progress")
	b.do(t, "advance to DONE with the keyboard",
		chromedp.Focus(chromedp.CSS(`#events-body tr[data-action="login"] button.advance`)),
		chromedp.KeyEvent("\r"),
	)
	b.waitJS(t, "DONE, no step left", `(() => { const r = document.querySelector('#events-body tr[data-action="login"]');
		return r.dataset.status === 'DONE' && r.querySelector('button.advance') === null; })()`)

	// 5. An API error is shown with its title, detail and field error.
	b.do(t, "record an unknown action",
		fill("rec-user", "7"),
		fill("rec-action", "dance"),
		fill("rec-metadata", ""),
		chromedp.Click(chromedp.CSS("#record button[type=submit]")),
	)
	b.waitJS(t, "the 422 is shown", `(() => { const p = document.getElementById('problem').innerText;
		return p.includes('Unprocessable') && p.includes('422') && p.includes('action') && p.includes('dance'); })()`)
	if got := eval[string](t, b, `document.getElementById('rec-action').getAttribute('aria-invalid') || ''`); got != "true" {
		t.Errorf("the blamed input is not marked invalid: aria-invalid=%q", got)
	}
	b.shot(t, "05-api-error")

	// 6. Counts: wait until the minute window holding the events has closed
	// (plus COUNT_SETTLE), have it computed now, and chart it.
	var page struct {
		Items []struct {
			RecordedAt time.Time `json:"recorded_at"`
		} `json:"items"`
	}
	if st := call(t, "GET", srv.Base+"/v1/users/7/events", "", &page); st != 200 || len(page.Items) != 2 {
		t.Fatalf("user 7's events: %d %+v", st, page)
	}
	want := map[time.Time]int{} // window start → events
	var lastEnd time.Time
	for _, e := range page.Items {
		start := e.RecordedAt.UTC().Truncate(time.Minute)
		want[start]++
		if end := start.Add(time.Minute); end.After(lastEnd) {
			lastEnd = end
		}
	}
	waitStart := time.Now()
	time.Sleep(time.Until(lastEnd.Add(1500 * time.Millisecond)))
	waited := time.Since(waitStart)
	var run struct {
		Windows []struct{ Start, End time.Time } `json:"windows"`
	}
	if st := call(t, "POST", srv.Base+"/v1/activity-counts/runs", "", &run); st != 202 {
		t.Fatalf("POST /v1/activity-counts/runs: %d", st)
	}
	b.do(t, "show user 7's counts",
		fill("c-user", "7"),
		chromedp.Click(chromedp.CSS("#counts button[type=submit]")),
	)
	b.waitJS(t, "bars drawn", `document.querySelectorAll('#chart svg rect.bar').length > 0`)
	type bar struct {
		Label string `json:"label"`
		Total int    `json:"total"`
		Start string `json:"start"`
	}
	bars := eval[[]bar](t, b, `[...document.querySelectorAll('#chart svg rect.bar')].map((r) =>
		({label: r.getAttribute('aria-label'), total: Number(r.dataset.total), start: r.dataset.windowStart}))`)
	got := map[time.Time]int{}
	for _, br := range bars {
		start, err := time.Parse(time.RFC3339Nano, br.Start)
		if err != nil {
			t.Fatalf("bar window start %q: %v", br.Start, err)
		}
		got[start.UTC()] = br.Total
		wantLabel := fmt.Sprintf(": %d event", br.Total)
		if !strings.Contains(br.Label, wantLabel) {
			t.Errorf("bar label %q does not say %q", br.Label, wantLabel)
		}
	}
	for start, n := range want {
		if got[start] != n {
			t.Errorf("window %s: chart shows %d events, want %d (bars %+v, run %+v)", start, got[start], n, bars, run)
		}
	}
	if rows := eval[int](t, b, `document.querySelectorAll('#counts-body tr').length`); rows != len(bars) {
		t.Errorf("the table fallback has %d rows for %d bars", rows, len(bars))
	}
	b.shot(t, "06-counts")

	// 7. A phone-sized screen: nothing wider than the viewport.
	b.do(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.waitJS(t, "no horizontal overflow at 390px", `document.documentElement.scrollWidth <= 390`)
	b.shot(t, "07-phone")
	b.do(t, "desktop viewport", chromedp.EmulateViewport(1280, 900))

	// 8. Sign out: the token leaves sessionStorage and the data leaves the page.
	b.do(t, "sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	if got := eval[int](t, b, `sessionStorage.length`); got != 0 {
		t.Fatalf("sessionStorage still holds %d items after sign-out", got)
	}
	if rows := eval[int](t, b, `document.querySelectorAll('#events-body tr, #counts-body tr, #chart svg').length`); rows != 0 {
		t.Errorf("%d rows or charts left on the page after sign-out", rows)
	}
	b.do(t, "reload signed out", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("token")))
	if app := eval[bool](t, b, `document.getElementById('app').hidden`); !app {
		t.Error("the app is shown after sign-out and reload")
	}
	b.shot(t, "08-signed-out")

	// A wrong token is refused with the API's message.
	b.do(t, "sign in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "adt_not-a-real-token"),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
	)
	b.waitJS(t, "401 shown", `document.getElementById('problem').innerText.includes('401') && document.getElementById('app').hidden
		&& sessionStorage.length === 0`)

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors (CSP violations or exceptions): %v", errs)
	}
	t.Logf("browser test: %v in all (server ready after %v; %v waiting for the count window to close)",
		time.Since(began).Round(100*time.Millisecond), ready.Sub(began).Round(100*time.Millisecond), waited.Round(100*time.Millisecond))
}
