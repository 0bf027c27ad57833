package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/activityd/activityd/test/binary"
)

// Conditions the test waits for.
const (
	// listed: the events list is loaded (no request in flight).
	listed = `document.getElementById('events').getAttribute('aria-busy') === 'false'`
	// overviewLoaded: the overview's numbers are in.
	overviewLoaded = `!document.getElementById('view-overview').hidden &&
		document.getElementById('overview-body').getAttribute('aria-busy') === 'false' &&
		document.getElementById('kpi-events').textContent !== '–'`
	// rows counts the rows of the events list.
	rows = `document.querySelectorAll('#events-body tr').length`
)

// visible is a JavaScript expression: the element with this id is shown
// (not hidden by an attribute nor by CSS).
func visible(id string) string {
	return fmt.Sprintf(`(() => { const e = document.getElementById(%q); return !!e && e.getClientRects().length > 0; })()`, id)
}

// viewport sets the size of the page, as a desktop or as a phone.
func viewport(w, h int64, phone bool) chromedp.Action[chromedp.Void] {
	if phone {
		return chromedp.EmulateViewport(w, h, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	}
	return chromedp.EmulateViewport(w, h)
}

// colorScheme emulates the system's light or dark preference.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return chromedp.Void{}, err
	}
}

// TestWebUI walks through the console against the real binary on the
// memory store, counting every minute: the overview of a fresh store and
// of one with events (the open window marked not final, then counted),
// the events list with its filters in the URL (reload and back button),
// an event's detail and status steps, a user's timeline, recording as an
// admin with and without a user id, sign-out; at 1280×800 and 360×740,
// checking each page with axe-core.
func TestWebUI(t *testing.T) {
	began := time.Now()
	chromium := chromiumPath(t)
	if _, err := axeSource(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, chromium)
	srv := binary.Serve.Within(30*time.Second).Start(t, t.TempDir(),
		"DATABASE_URL=memory:",
		"BOOTSTRAP_ADMIN_TOKEN="+adminToken,
		"COUNT_SCHEDULE=* * * * *",
		"COUNT_SETTLE=1s",
	)
	ready := time.Now()

	// The page and its icon are served without credentials, with a CSP.
	for _, path := range []string{"/", "/favicon.ico"} {
		res, err := http.Get(srv.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("GET %s: %d, CSP %q", path, res.StatusCode, res.Header.Get("Content-Security-Policy"))
		}
	}
	// What the API says of the admin token and the vocabulary.
	var me struct {
		Name   string `json:"name"`
		UserID *int64 `json:"user_id"`
	}
	if st := call(t, "GET", srv.Base+"/v1/me", "", &me); st != 200 || me.UserID != nil {
		t.Fatalf("GET /v1/me with the admin token: %d %+v", st, me)
	}
	var vocab struct {
		Actions []string `json:"actions"`
		Any     bool     `json:"any"`
	}
	if st := call(t, "GET", srv.Base+"/v1/actions", "", &vocab); st != 200 || vocab.Any || len(vocab.Actions) == 0 {
		t.Fatalf("GET /v1/actions: %d %+v", st, vocab)
	}

	// 1. Before sign-in: the sign-in form alone, nobody named, no sign-out.
	b.do(t, "desktop", viewport(1280, 800, false))
	b.do(t, "open the console", chromedp.Navigate(srv.Base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	for _, id := range []string{"who", "signout", "nav", "view-overview", "view-events"} {
		if eval[bool](t, b, visible(id)) {
			t.Errorf("#%s is shown before anyone signs in", id)
		}
	}
	b.shot(t, "01-signin")
	b.checkA11y(t, "sign-in")

	// 2. Sign in with the admin token: the header says who, the overview
	// of an empty store says how to start (and no filter talk).
	b.do(t, "sign in",
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("view-overview")),
	)
	b.waitJS(t, "overview loaded", overviewLoaded)
	if got := eval[string](t, b, `sessionStorage.getItem('activityd.token') || ''`); got != adminToken {
		t.Fatalf("sessionStorage token %q after sign-in", got)
	}
	if got := eval[int](t, b, `localStorage.length + document.cookie.length`); got != 0 {
		t.Fatalf("the token leaked outside sessionStorage (localStorage/cookies: %d)", got)
	}
	who := eval[string](t, b, `document.getElementById('who').innerText`)
	if !strings.Contains(who, me.Name) || !strings.Contains(who, "admin, all users") || !strings.Contains(who, "admin") {
		t.Errorf("header %q does not say who is signed in (%s, admin, all users)", who, me.Name)
	}
	b.waitJS(t, "getting started shown", visible("getting-started"))
	if txt := eval[string](t, b, `document.getElementById('main').innerText`); strings.Contains(txt, "No events match") {
		t.Errorf("the empty overview talks of filters: %q", txt)
	}
	b.shot(t, "02-overview-empty")
	b.checkA11y(t, "overview, empty store")

	// 3. Events, recorded through the API: users 7, 8 and 9, one of them
	// yesterday (by occurred_at).
	yesterday := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	seed := []string{
		`{"user_id":7,"action":"login","metadata":{"device":"Chrome","ip":"192.168.0.1"}}`,
		`{"user_id":7,"action":"upload_file","metadata":{"file":"report.pdf","size":48213}}`,
		`{"user_id":7,"action":"logout","occurred_at":"` + yesterday + `"}`,
		`{"user_id":8,"action":"login"}`,
		`{"user_id":8,"action":"login","metadata":{"device":"Firefox"}}`,
		`{"user_id":8,"action":"viewed","metadata":{"page":"/pricing"}}`,
		`{"user_id":9,"action":"created"}`,
	}
	var recordedAt []time.Time
	for _, body := range seed {
		var e struct {
			RecordedAt time.Time `json:"recorded_at"`
		}
		if st := call(t, "POST", srv.Base+"/v1/events", body, &e); st != 201 {
			t.Fatalf("POST /v1/events %s: %d", body, st)
		}
		recordedAt = append(recordedAt, e.RecordedAt)
	}

	// 4. The overview: totals, the open window drawn as not final, by
	// action, by user, and when the next count is.
	b.do(t, "reload the overview", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("view-overview")))
	b.waitJS(t, "seven events in the overview", overviewLoaded+` && document.getElementById('kpi-events').textContent === '7'`)
	if eval[bool](t, b, visible("getting-started")) {
		t.Error("the getting-started card is still shown with events in the store")
	}
	if got := eval[int](t, b, `[...document.querySelectorAll('#chart .slot')].reduce((n, g) => n + Number(g.dataset.open), 0)`); got != 7 {
		t.Errorf("the chart shows %d not-final events, want 7", got)
	}
	if got := eval[string](t, b, `[...document.querySelectorAll('#chart .open-label')].map((e) => e.textContent).join()`); !strings.Contains(got, "not final") {
		t.Errorf("the open window is not labelled 'not final': %q", got)
	}
	if got := eval[string](t, b, `document.getElementById('next-count').innerText`); !strings.Contains(got, "Next count at") {
		t.Errorf("the overview does not say when the next count is: %q", got)
	}
	byAction := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#by-action-body tr')].map((r) => [r.dataset.key, r.querySelector('.num').textContent]))`)
	if byAction["login"] != "3" || byAction["upload_file"] != "1" || len(byAction) != 5 {
		t.Errorf("events by action %v, want login 3, upload_file 1, … (5 actions)", byAction)
	}
	top := eval[[]string](t, b, `[...document.querySelectorAll('#top-users-body tr')].map((r) => r.dataset.key)`)
	if len(top) != 3 || top[0] != "7" && top[0] != "8" {
		t.Errorf("most active users %v, want 7 and 8 first of 3", top)
	}
	// Labels sit under the bars: each x label is centred on a bar slot.
	if off := eval[bool](t, b, `(() => { const slots = [...document.querySelectorAll('#chart .slot .hit')].map((r) => Number(r.getAttribute('x')) + Number(r.getAttribute('width')) / 2);
		return [...document.querySelectorAll('#chart .x-label')].every((l) => slots.some((c) => Math.abs(c - Number(l.getAttribute('x'))) < 0.2)); })()`); !off {
		t.Error("the chart's time labels are not centred under bars")
	}
	b.shot(t, "03-overview")
	b.checkA11y(t, "overview")
	b.do(t, "7 days", chromedp.Click(chromedp.CSS(`label[for="p-7d"]`)))
	b.waitJS(t, "7 days in the URL", `location.hash === '#/?period=7d'`)
	b.waitJS(t, "7-day overview", overviewLoaded+` && document.getElementById('chart-caption').textContent.includes('7 days')`)
	b.shot(t, "04-overview-7d")
	b.do(t, "a custom period: the last two hours",
		chromedp.Click(chromedp.CSS(`label[for="p-custom"]`)),
		chromedp.WaitVisible(chromedp.ID("p-from")),
		chromedp.Evaluate[chromedp.Void](`(() => { const p = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
			document.getElementById('p-from').value = p(new Date(Date.now() - 2 * 3600e3));
			document.getElementById('p-to').value = p(new Date(Date.now() + 60e3)); })()`),
		chromedp.Click(chromedp.CSS(`#custom-range button[type=submit]`)),
	)
	b.waitJS(t, "custom period in the URL and shown", `location.hash.startsWith('#/?from=') && location.hash.includes('&to=') && `+overviewLoaded+
		` && document.getElementById('kpi-events').textContent === '7' && document.getElementById('p-custom').checked`)

	// 5. Events: filters go into the URL; a reload keeps them; the back
	// button returns to the previous filters.
	b.do(t, "events", chromedp.Click(chromedp.CSS(`#nav a[data-view="events"]`)))
	b.waitJS(t, "all seven listed", `location.hash === '#/events' && `+listed+` && `+rows+` === 7`)
	b.checkA11y(t, "events")
	b.do(t, "filter user 8, login",
		fill("f-user", "8"),
		fill("f-action", "login"),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "two logins of user 8", listed+` && `+rows+` === 2 && [...document.querySelectorAll('#events-body tr')].every((r) => r.dataset.action === 'login')`)
	hash := eval[string](t, b, `location.hash`)
	q, err := url.ParseQuery(strings.TrimPrefix(hash, "#/events?"))
	if err != nil || q.Get("user_id") != "8" || q.Get("action") != "login" {
		t.Fatalf("the filters are not in the URL: %q", hash)
	}
	b.shot(t, "05-events-filtered")
	b.do(t, "reload the filtered list", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("view-events")))
	b.waitJS(t, "still filtered after reload", listed+` && `+rows+` === 2 && document.getElementById('f-user').value === '8' &&
		document.getElementById('f-action').value === 'login' && location.hash === `+jsString(hash))
	// "Export this view": the export of these filters, newest first as
	// listed, fetched with the token (not in the URL) and saved from a Blob,
	// CSV with the keyboard, NDJSON with a click.
	b.do(t, "catch the exports' blobs", chromedp.Evaluate[chromedp.Void](`(() => { window.exported = [];
		const create = URL.createObjectURL;
		URL.createObjectURL = (blob) => { blob.text().then((s) => window.exported.push(s)); return create.call(URL, blob); }; })()`))
	b.do(t, "export CSV with the keyboard", chromedp.Focus(chromedp.ID("export-csv")), chromedp.KeyEvent(" "))
	b.waitJS(t, "CSV exported", `window.exported.length === 1 && document.getElementById('export-status').textContent.startsWith('Exported 2 events to activityd-events-')`)
	b.do(t, "export NDJSON", chromedp.Click(chromedp.ID("export-ndjson")))
	b.waitJS(t, "NDJSON exported", `window.exported.length === 2 && document.getElementById('export-status').textContent.endsWith('.ndjson.')`)
	exported := eval[[]string](t, b, `window.exported`)
	csvLines := strings.Split(strings.TrimSuffix(exported[0], "\r\n"), "\r\n") // RFC 4180: CRLF
	if len(csvLines) != 4 || csvLines[0] != "id,user_id,action,status,occurred_at,recorded_at,updated_at,metadata,legacy_system,legacy_id" ||
		!strings.Contains(csvLines[1], ",8,login,PENDING,") || csvLines[3] != "#export_complete,2" {
		t.Errorf("CSV export of user 8's logins:\n%s", exported[0])
	}
	ndLines := strings.Split(strings.TrimSuffix(exported[1], "\n"), "\n")
	if len(ndLines) != 3 || !strings.Contains(ndLines[0], `"user_id":8,"action":"login"`) || !strings.Contains(ndLines[0], `"device":"Firefox"`) ||
		ndLines[2] != `{"export_complete":true,"count":2}` {
		t.Errorf("NDJSON export of user 8's logins, newest first:\n%s", exported[1])
	}
	b.do(t, "filter by status DONE and oldest first",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('f-status').value = 'DONE'; document.getElementById('f-order').value = 'asc'`),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
	)
	b.waitJS(t, "none done", listed+` && `+rows+` === 0 && location.hash.includes('status=DONE') && location.hash.includes('order=asc')`)
	if got := eval[string](t, b, `document.getElementById('events-empty').innerText`); !strings.Contains(got, "No events match these filters") {
		t.Errorf("a filtered empty list says %q", got)
	}
	b.do(t, "back", chromedp.NavigateBack())
	b.waitJS(t, "back to user 8's logins", listed+` && location.hash === `+jsString(hash)+` && `+rows+` === 2 &&
		document.getElementById('f-status').value === '' && document.getElementById('f-order').value === 'desc'`)

	// 6. An event's detail: metadata, history, and its next steps.
	b.do(t, "all events", chromedp.Click(chromedp.ID("f-clear")))
	b.waitJS(t, "unfiltered", `location.hash === '#/events' && `+listed+` && `+rows+` === 7`)
	b.do(t, "open user 7's login", chromedp.Click(chromedp.CSS(`#events-body tr[data-action="login"][data-user="7"] td[data-label="Action"]`)))
	b.waitJS(t, "detail shown", `/^#\/events\/[0-9a-f-]{36}$/.test(location.hash) && document.querySelectorAll('.history li').length === 1`)
	if got := eval[string](t, b, `document.querySelector('pre.json').textContent`); !strings.Contains(got, "\n  \"device\": \"Chrome\",\n  \"ip\": ") {
		t.Errorf("metadata not pretty-printed: %q", got)
	}
	b.do(t, "start", chromedp.Click(chromedp.CSS(`#advance[data-next="IN_PROGRESS"]`)))
	b.waitJS(t, "in progress", `document.querySelectorAll('.history li').length === 2 && document.querySelector('#advance[data-next="DONE"]') !== null`)
	b.do(t, "finish with the keyboard", chromedp.Focus(chromedp.ID("advance")), chromedp.KeyEvent("\r"))
	b.waitJS(t, "done", `document.querySelectorAll('.history li').length === 3 && document.getElementById('advance') === null &&
		document.querySelector('#event-step .status').dataset.status === 'DONE'`)
	b.shot(t, "06-event")
	b.checkA11y(t, "event detail")
	eventHash := eval[string](t, b, `location.hash`)

	// 7. A user's timeline, newest first, by day.
	b.do(t, "user 7", chromedp.Navigate(srv.Base+"/#/users/7"))
	b.waitJS(t, "timeline", `document.getElementById('timeline').getAttribute('aria-busy') === 'false' && document.querySelectorAll('.tl-item').length === 3`)
	days := eval[[]string](t, b, `[...document.querySelectorAll('.day .day-h')].map((h) => h.textContent)`)
	if len(days) != 2 || days[0] != "Today" || days[1] != "Yesterday" {
		t.Errorf("timeline days %v, want [Today Yesterday]", days)
	}
	b.shot(t, "07-timeline")
	b.checkA11y(t, "user timeline")

	// 8. Record as the admin: without a user id the field says it is
	// required and nothing is sent; with one, the event is recorded.
	count := func() int {
		var page struct{ Items []any }
		call(t, "GET", srv.Base+"/v1/events?limit=1000", "", &page)
		return len(page.Items)
	}
	before := count()
	b.do(t, "record", chromedp.Click(chromedp.CSS(`#nav a[data-view="record"]`)), chromedp.WaitVisible(chromedp.ID("rec-action")))
	if got := eval[string](t, b, `document.querySelector('label[for="rec-user"]').innerText`); !strings.Contains(got, "required") {
		t.Errorf("the user id label of an admin says %q, not required", got)
	}
	if got := eval[[]string](t, b, `[...document.querySelectorAll('#rec-action option')].map((o) => o.value).filter(Boolean)`); len(got) != len(vocab.Actions) {
		t.Errorf("action choices %v, want the vocabulary %v", got, vocab.Actions)
	}
	b.do(t, "record without a user id",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('rec-action').value = 'upload_file'`),
		chromedp.Click(chromedp.CSS("#record button[type=submit]")),
	)
	b.waitJS(t, "user id required", `document.getElementById('rec-user').getAttribute('aria-invalid') === 'true' &&
		document.getElementById('rec-user-error').textContent.includes('Required') && document.activeElement.id === 'rec-user'`)
	if n := count(); n != before {
		t.Errorf("an event was sent without a user id: %d events, were %d", n, before)
	}
	b.shot(t, "08-record-required")
	b.checkA11y(t, "record, user id missing")
	b.do(t, "record for user 7",
		fill("rec-user", "7"),
		fill("rec-metadata", `{"file":"q3.xlsx"}`),
		chromedp.Click(chromedp.CSS("#record button[type=submit]")),
	)
	b.waitJS(t, "recorded", `document.getElementById('notice').innerText.includes('Recorded upload_file for user 7')`)
	if n := count(); n != before+1 {
		t.Errorf("%d events after recording one, were %d", n, before)
	}
	b.shot(t, "09-recorded")

	// 9. A phone: every view fits 360 px; the dark scheme follows the system.
	b.do(t, "phone", viewport(360, 740, true))
	for _, v := range []struct{ name, hash, ready string }{
		{"overview", "#/", overviewLoaded},
		{"events", "#/events", listed + ` && ` + rows + ` === 8`},
		{"event", eventHash, `document.querySelectorAll('.history li').length === 3`},
		{"timeline", "#/users/7", `document.querySelectorAll('.tl-item').length === 4`},
		{"record", "#/record", visible("rec-action")},
	} {
		b.do(t, "phone "+v.name, chromedp.Navigate(srv.Base+"/"+v.hash))
		b.waitJS(t, "phone "+v.name+" loaded", v.ready)
		b.waitJS(t, "no horizontal overflow at 360px on "+v.name, `document.documentElement.scrollWidth <= 360`)
		b.shot(t, "10-phone-"+v.name)
		if v.name == "overview" || v.name == "events" {
			b.checkA11y(t, v.name+" at 360px")
		}
	}
	b.do(t, "dark", colorScheme("dark"), viewport(1280, 800, false), chromedp.Navigate(srv.Base+"/#/"))
	b.waitJS(t, "dark overview", overviewLoaded+` && matchMedia('(prefers-color-scheme: dark)').matches`)
	b.shot(t, "11-overview-dark")
	b.checkA11y(t, "overview, dark")
	b.do(t, "light", colorScheme("light"))

	// 10. The counted window: once the minute holding the events has closed
	// (and settled), an admin run counts it, and the overview shows it final.
	var lastEnd time.Time
	for _, at := range recordedAt {
		if end := at.UTC().Truncate(time.Minute).Add(time.Minute); end.After(lastEnd) {
			lastEnd = end
		}
	}
	waitStart := time.Now()
	time.Sleep(time.Until(lastEnd.Add(1500 * time.Millisecond)))
	waited := time.Since(waitStart)
	if st := call(t, "POST", srv.Base+"/v1/activity-counts/runs", "", nil); st != 202 {
		t.Fatalf("POST /v1/activity-counts/runs: %d", st)
	}
	b.do(t, "overview after the count", chromedp.Navigate(srv.Base+"/#/?period=24h"), chromedp.Reload())
	b.waitJS(t, "seven counted events", overviewLoaded+` && [...document.querySelectorAll('#chart .slot')].reduce((n, g) => n + Number(g.dataset.final), 0) >= 7`)
	b.shot(t, "12-overview-counted")

	// 11. Sign out: the token leaves sessionStorage and the data the page.
	b.do(t, "sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	if got := eval[int](t, b, `sessionStorage.length`); got != 0 {
		t.Fatalf("sessionStorage still holds %d items after sign-out", got)
	}
	if n := eval[int](t, b, `document.querySelectorAll('#events-body tr, #timeline li, #chart svg, .history li').length`); n != 0 {
		t.Errorf("%d rows or charts left on the page after sign-out", n)
	}
	for _, id := range []string{"who", "nav", "view-overview"} {
		if eval[bool](t, b, visible(id)) {
			t.Errorf("#%s is shown after sign-out", id)
		}
	}
	b.do(t, "reload signed out", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot(t, "13-signed-out")
	b.do(t, "sign in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "adt_not-a-real-token"),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
	)
	b.waitJS(t, "401 shown", `document.getElementById('problem').innerText.includes('401') && !`+visible("nav")+`
		&& sessionStorage.length === 0`)

	// A server without GET /v1/me and GET /v1/actions (an older one, as
	// the page sees it): signed in without details, actions as free text.
	b.do(t, "hide /v1/me and /v1/actions", chromedp.Evaluate[chromedp.Void](`(() => { const real = window.fetch;
		window.fetch = (path, init) => /^\/v1\/(me|actions)(\?|$)/.test(path)
			? Promise.resolve(new Response('{"title":"Not Found","status":404}', {status: 404, headers: {'Content-Type': 'application/problem+json'}}))
			: real(path, init); })()`),
		fill("token", adminToken),
		chromedp.Click(chromedp.CSS("#signin button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("nav")),
	)
	if got := eval[string](t, b, `document.getElementById('who-name').textContent`); got != "Signed in" {
		t.Errorf("without /v1/me the header says %q, want Signed in", got)
	}
	b.do(t, "record, free text", chromedp.Click(chromedp.CSS(`#nav a[data-view="record"]`)), chromedp.WaitVisible(chromedp.ID("rec-action")))
	if got := eval[string](t, b, `document.getElementById('rec-action').tagName + ' ' + document.getElementById('rec-action').type`); got != "INPUT text" {
		t.Errorf("without /v1/actions the action is a %s, want a text input", got)
	}
	b.do(t, "sign out again", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors (CSP violations or exceptions): %v", errs)
	}
	t.Logf("browser test: %v in all (server ready after %v; %v waiting for the count window to close)",
		time.Since(began).Round(100*time.Millisecond), ready.Sub(began).Round(100*time.Millisecond), waited.Round(100*time.Millisecond))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return fmt.Sprintf("%q", s) }
