package promql_test

import (
	"slices"
	"testing"

	"github.com/activityd/activityd/test/promql"
)

// TestParsing pins the extraction the dashboard tests rely on.
func TestParsing(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		want   []string
		labels []string
	}{
		{`sum by (route, le) (rate(activityd_http_request_duration_seconds_bucket{status=~"5..", route!="a{b}"}[$__rate_interval]))`,
			[]string{"activityd_http_request_duration_seconds_bucket"}, []string{"route", "le"}},
		{`histogram_quantile(0.95, sum(rate(x_bucket[5m])) by (le)) * 1e3 + foo offset 5m`,
			[]string{"x_bucket", "foo"}, []string{"le"}},
		{`sum(rate(a_total[1h])) / ignoring(op) group_left sum without (job) (b:recorded) > bool 0`,
			[]string{"a_total", "b:recorded"}, []string{"op", "job"}},
		{`max by (job) (activityd_count_lag_seconds)`, []string{"activityd_count_lag_seconds"}, []string{"job"}},
		{`rate(m{l="by (x)"}[${__interval}]) and on() vector(1)`, []string{"m"}, nil},
	} {
		if got := promql.Metrics(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("Metrics(%s) = %v, want %v", tc.expr, got, tc.want)
		}
		if got := promql.GroupingLabels(tc.expr); !slices.Equal(got, tc.labels) {
			t.Errorf("GroupingLabels(%s) = %v, want %v", tc.expr, got, tc.labels)
		}
	}
	sel := promql.Selectors(`a{result="HIT", view=~"x|y"} / b`)
	if len(sel) != 2 || sel[0] != (promql.Match{"a", "result", "=", "HIT"}) || sel[1] != (promql.Match{"a", "view", "=~", "x|y"}) {
		t.Errorf("Selectors: %+v", sel)
	}
}
