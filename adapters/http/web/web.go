// Package web is activityd's browser UI (README: Web UI; GET /): one HTML
// page with its stylesheet and script, plain files embedded in the binary,
// no build step and nothing loaded from elsewhere. The page signs in with
// a token kept in the tab's sessionStorage and calls only the public /v1
// API with it, so it never sees more than that token allows; serving the
// page itself needs no credentials.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"time"
)

//go:embed index.html app.css app.js
var files embed.FS

// ContentSecurityPolicy is sent with every UI response: scripts and styles
// only from the page's own origin (no inline ones), API calls only to it,
// and the page may not be framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// AssetPrefix is the path under which the stylesheet and script are served.
const AssetPrefix = "/ui/"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// FaviconPath is where browsers look for the site's icon.
const FaviconPath = "/favicon.ico"

// Handler serves the UI: the page at "/", its assets under AssetPrefix
// ("/ui/app.css", "/ui/app.js") and the icon at FaviconPath. Any other
// path is 404. Responses are
// revalidated by ETag, so a new binary's UI is picked up at once.
func Handler() http.Handler {
	assets := map[string]asset{}
	for path, name := range map[string]string{"/": "index.html", AssetPrefix + "app.css": "app.css", AssetPrefix + "app.js": "app.js"} {
		b, err := files.ReadFile(name)
		if err != nil {
			panic("web: embedded file missing: " + name) // a build error, not a runtime one
		}
		sum := sha256.Sum256(b)
		assets[path] = asset{body: b, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	ico := favicon()
	sum := sha256.Sum256(ico)
	assets[FaviconPath] = asset{body: ico, contentType: "image/x-icon", etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !ok {
			// The API's problem document for 404 (docs/problems.md#not-found):
			// every error activityd answers has that shape.
			h.Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(notFound)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

var notFound = []byte(`{"type":"https://github.com/activityd/activityd/blob/main/docs/problems.md#not-found",` +
	`"title":"Not Found","status":404,"detail":"there is no resource at this path"}` + "\n")

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	default:
		return "text/javascript; charset=utf-8"
	}
}

// favicon draws the console's logo (three bars on the accent colour, as in
// the page header) at 32×32 and wraps the PNG in an ICO container, which
// every browser takes at /favicon.ico.
func favicon() []byte {
	const n = 32
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	accent := color.NRGBA{0x1f, 0x5f, 0xbf, 0xff}
	white := color.NRGBA{0xff, 0xff, 0xff, 0xff}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			// A square with corners rounded to a radius of 7.
			dx, dy := max(7-x, x-(n-8), 0), max(7-y, y-(n-8), 0)
			if dx*dx+dy*dy <= 49 {
				img.SetNRGBA(x, y, accent)
			}
		}
	}
	for i, h := range []int{10, 20, 15} { // bar heights, bottom-aligned
		for x := 7 + i*7; x < 12+i*7; x++ {
			for y := 25 - h; y < 25; y++ {
				img.SetNRGBA(x, y, white)
			}
		}
	}
	var p bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		panic("web: encoding the favicon: " + err.Error()) // cannot fail for an in-memory image
	}
	var b bytes.Buffer
	// ICONDIR (reserved, type 1 = icon, 1 image), then one ICONDIRENTRY:
	// width, height, colours, reserved, planes, bit count, size, offset.
	_ = binary.Write(&b, binary.LittleEndian, []uint16{0, 1, 1})
	b.Write([]byte{n, n, 0, 0})
	_ = binary.Write(&b, binary.LittleEndian, []uint16{1, 32})
	_ = binary.Write(&b, binary.LittleEndian, []uint32{uint32(p.Len()), 6 + 16})
	b.Write(p.Bytes())
	return b.Bytes()
}
