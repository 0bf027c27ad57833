// Package promql reads what the dashboard's PromQL expressions refer to,
// roughly but well enough for tests: the metric names they select, the
// labels they group by and the label matchers of their selectors. The
// dashboard tests (deploy/ and test/e2e) use it to hold the dashboard to
// what activityd exports; promtool checks the syntax.
package promql

import (
	"regexp"
	"slices"
	"strings"
)

var (
	str      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	grafana  = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`) // Grafana variables: $__rate_interval, ${x}
	braces   = regexp.MustCompile(`\{[^{}]*\}`)
	brackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	ident    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	selector = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}`)
	matcher  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')`)
	keywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true}
)

// Metrics returns the metric names expr selects, in order of first use:
// what is left of its identifiers once strings, label matchers, ranges,
// grouping label lists, Grafana variables, function names, keywords and
// number/duration suffixes are set aside.
func Metrics(expr string) []string {
	s := str.ReplaceAllString(expr, `""`)
	s = grafana.ReplaceAllString(s, " ")
	s = braces.ReplaceAllString(s, " ")
	s = brackets.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range ident.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.", rune(s[loc[0]-1])) {
			continue // 1e3, 0x1f, 5m
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") || keywords[name] {
			continue // a function or an aggregation, or a keyword
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// GroupingLabels returns the labels of expr's by/without/on/ignoring/
// group_left/group_right lists.
func GroupingLabels(expr string) []string {
	var out []string
	for _, m := range grouping.FindAllStringSubmatch(str.ReplaceAllString(expr, `""`), -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// Match is one label matcher of a selector: metric{label op "value"}.
type Match struct{ Metric, Label, Op, Value string }

// Selectors returns the label matchers of expr's metric{...} selectors.
func Selectors(expr string) []Match {
	var out []Match
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
			out = append(out, Match{Metric: sel[1], Label: m[1], Op: m[2], Value: m[3][1 : len(m[3])-1]})
		}
	}
	return out
}
