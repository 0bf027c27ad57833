// Package browser drives the web console (adapters/http/web) of the real
// activityd binary in headless Chromium, the way a person would: sign in,
// read the overview, filter events (kept in the URL), open one and advance
// its status, read a user's timeline, record events, sign out; at desktop
// and phone widths, with an axe-core accessibility check of each page.
// Screenshots of each step go to test/artifacts/browser (ignored by git,
// kept by CI as artifacts).
//
// Chromium is /usr/bin/chromium, or CHROMIUM_PATH. Without it the test
// skips, except where CI is set, where it fails (.ci/run installs it).
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// startBrowser opens a headless Chromium tab, building the binary under
// test meanwhile.
func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	var buildErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, buildErr = binary.Build() })
	b := newBrowser(t, chromium)
	wg.Wait()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return b
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
