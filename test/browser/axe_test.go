package browser

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axe-core, vendored from the npm registry (testdata/axe-core/README.md):
// the file and the digest it must have.
const (
	axePath   = "testdata/axe-core/axe.min.js"
	axeSHA256 = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"
)

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axePath)
	if err != nil {
		return "", fmt.Errorf("reading axe-core: %w", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != axeSHA256 {
		return "", fmt.Errorf("%s has sha256 %x, want %s (see testdata/axe-core/README.md)", axePath, sum, axeSHA256)
	}
	return string(b), nil
})

// violation is one axe-core rule the page breaks, with where.
type violation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// axeRun runs axe-core on the page (WCAG 2.x A and AA rules and best
// practices) and returns its serious and critical violations.
const axeRun = `axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations
	.filter((v) => v.impact === 'serious' || v.impact === 'critical')
	.map((v) => ({id: v.id, impact: v.impact, help: v.help,
		targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary.replace(/\s+/g, ' ').slice(0, 200))})))`

// checkA11y fails the test for every serious or critical axe-core
// violation of the page as it is now.
func (b *browser) checkA11y(t *testing.T, page string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	// Injected through the DevTools protocol, which the page's CSP does not
	// govern, once per document.
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe === 'object'`))
	if err == nil && !loaded {
		_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](src+"\n;true"))
	}
	if err != nil {
		t.Fatalf("injecting axe-core on %s: %v", page, err)
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running axe-core on %s: %v", page, err)
	}
	for _, v := range vs {
		t.Errorf("accessibility (%s) on %s: %s [%s]\n\t%s", v.Impact, page, v.Help, v.ID, strings.Join(v.Targets, "\n\t"))
	}
}
