package web_test

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/activityd/activityd/adapters/http/web"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestServesPageAndAssets(t *testing.T) {
	h := web.Handler()
	for path, ctype := range map[string]string{
		"/":            "text/html; charset=utf-8",
		"/ui/app.css":  "text/css; charset=utf-8",
		"/ui/app.js":   "text/javascript; charset=utf-8",
		"/favicon.ico": "image/x-icon",
	} {
		res := get(t, h, path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ctype || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
		if res.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
			t.Errorf("GET %s: CSP %q", path, res.Header.Get("Content-Security-Policy"))
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", path)
			continue
		}
		if res := get(t, h, path, "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, res.StatusCode)
		}
	}
	for _, path := range []string{"/ui/", "/ui/nope.js", "/index.html", "/ui/../web.go"} {
		if res := get(t, h, path); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

// TestNoInlineCodeOrRemoteResources: the CSP allows scripts and styles
// from the page's origin only, so the page must not rely on inline ones
// nor on anything loaded from elsewhere (CDNs, fonts).
func TestNoInlineCodeOrRemoteResources(t *testing.T) {
	h := web.Handler()
	page, _ := io.ReadAll(get(t, h, "/").Body)
	html := string(page)
	for _, re := range []string{`<script(\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`, `(src|href)="(https?:)?//`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html has %q (pattern %s)", m, re)
		}
	}
	if !strings.Contains(html, `<script src="/ui/app.js"`) || !strings.Contains(html, `href="/ui/app.css"`) {
		t.Error("index.html does not load /ui/app.js and /ui/app.css")
	}
	for _, path := range []string{"/ui/app.css", "/ui/app.js"} {
		b, _ := io.ReadAll(get(t, h, path).Body)
		src := strings.ReplaceAll(string(b), "'http://www.w3.org/2000/svg'", "") // the SVG namespace, not a fetch
		if m := regexp.MustCompile(`https?://|@import|url\(`).FindString(src); m != "" {
			t.Errorf("%s refers to something outside: %q", path, m)
		}
	}
}

// TestEveryInputHasALabel: each input, select and textarea of the page
// has a <label for=...>.
func TestEveryInputHasALabel(t *testing.T) {
	page, _ := io.ReadAll(get(t, web.Handler(), "/").Body)
	html := string(page)
	ids := regexp.MustCompile(`<(?:input|select|textarea)\s[^>]*\bid="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(ids) < 10 {
		t.Fatalf("found only %d form controls", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(html, `<label for="`+m[1]+`"`) {
			t.Errorf("control #%s has no label", m[1])
		}
	}
	if n := len(regexp.MustCompile(`<(?:input|select|textarea)\s`).FindAllString(html, -1)); n != len(ids) {
		t.Errorf("%d form controls, %d with an id", n, len(ids))
	}
}

// TestFavicon: /favicon.ico is an ICO holding one 32×32 PNG that decodes.
func TestFavicon(t *testing.T) {
	b, _ := io.ReadAll(get(t, web.Handler(), web.FaviconPath).Body)
	if len(b) < 22 {
		t.Fatalf("favicon of %d bytes", len(b))
	}
	var dir struct{ Reserved, Type, Count uint16 }
	var entry struct {
		W, H, Colors, Reserved uint8
		Planes, Bits           uint16
		Size, Offset           uint32
	}
	r := bytes.NewReader(b)
	if err := binary.Read(r, binary.LittleEndian, &dir); err != nil || dir.Type != 1 || dir.Count != 1 {
		t.Fatalf("ICO header %+v: %v", dir, err)
	}
	if err := binary.Read(r, binary.LittleEndian, &entry); err != nil || entry.W != 32 || entry.H != 32 ||
		int(entry.Offset)+int(entry.Size) != len(b) {
		t.Fatalf("ICO entry %+v (file of %d bytes): %v", entry, len(b), err)
	}
	img, err := png.Decode(bytes.NewReader(b[entry.Offset:]))
	if err != nil {
		t.Fatalf("the icon's PNG: %v", err)
	}
	if got := img.Bounds().Size(); got.X != 32 || got.Y != 32 {
		t.Errorf("icon of %v, want 32×32", got)
	}
}
