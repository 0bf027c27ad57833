package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// summary is the outcome of one run, or the median of several.
type summary struct {
	Label       string           `json:"label,omitempty"`
	Scenario    string           `json:"scenario"`
	Concurrency int              `json:"concurrency"`
	Run         int              `json:"run,omitempty"`       // 1-based; 0 for a median or a seed
	MedianOf    int              `json:"median_of,omitempty"` // how many runs a median summarises
	Seconds     float64          `json:"seconds"`             // measured wall time
	Requests    int64            `json:"requests"`            // completed requests, successful or not
	OK          int64            `json:"ok"`                  // successful requests
	RPS         float64          `json:"rps"`                 // successful requests per second
	Events      int64            `json:"events"`              // events stored
	EPS         float64          `json:"events_per_s"`        // events stored per second
	ItemsPerReq float64          `json:"items_per_list"`      // mean events per list page
	LoadCores   float64          `json:"load_cores"`          // CPU the load tool itself used, in cores
	XCache      int64            `json:"x_cache"`             // responses with an X-Cache header
	CacheHits   float64          `json:"cache_hit_ratio"`     // the share of them that said HIT
	P50         float64          `json:"p50_ms"`              // latencies of successful requests
	P90         float64          `json:"p90_ms"`
	P99         float64          `json:"p99_ms"`
	Max         float64          `json:"max_ms"`
	Errors      int64            `json:"errors"`           // failed requests and batch items
	ByStatus    map[string]int64 `json:"errors_by_status"` // "503", "net", "item:422", ...
	Stopped     string           `json:"stopped,omitempty"`
	Followed    int64            `json:"feed_followed,omitempty"`     // changes the -followers received during the run
	Delivered   int64            `json:"webhook_delivered,omitempty"` // changes the -webhooks receiver got during the run
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order; 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none. xs is not modified.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fill sets the latency fields from the latencies of successful requests,
// sorting them in place.
func (s *summary) fill(lat []time.Duration) {
	slices.Sort(lat)
	s.P50 = ms(percentile(lat, 50))
	s.P90 = ms(percentile(lat, 90))
	s.P99 = ms(percentile(lat, 99))
	s.Max = ms(percentile(lat, 100))
	if s.Seconds > 0 {
		s.RPS = float64(s.OK) / s.Seconds
		s.EPS = float64(s.Events) / s.Seconds
	}
}

// medianOf summarises runs by the median of each figure (each percentile
// is the median of the runs' percentiles); error counts are summed, so that
// an error in any run shows.
func medianOf(runs []summary) summary {
	pick := func(f func(summary) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	m := summary{
		Label:       runs[0].Label,
		Scenario:    runs[0].Scenario,
		Concurrency: runs[0].Concurrency,
		MedianOf:    len(runs),
		Seconds:     pick(func(r summary) float64 { return r.Seconds }),
		Requests:    int64(pick(func(r summary) float64 { return float64(r.Requests) })),
		OK:          int64(pick(func(r summary) float64 { return float64(r.OK) })),
		RPS:         pick(func(r summary) float64 { return r.RPS }),
		Events:      int64(pick(func(r summary) float64 { return float64(r.Events) })),
		EPS:         pick(func(r summary) float64 { return r.EPS }),
		ItemsPerReq: pick(func(r summary) float64 { return r.ItemsPerReq }),
		LoadCores:   pick(func(r summary) float64 { return r.LoadCores }),
		XCache:      int64(pick(func(r summary) float64 { return float64(r.XCache) })),
		CacheHits:   pick(func(r summary) float64 { return r.CacheHits }),
		P50:         pick(func(r summary) float64 { return r.P50 }),
		P90:         pick(func(r summary) float64 { return r.P90 }),
		P99:         pick(func(r summary) float64 { return r.P99 }),
		Followed:    int64(pick(func(r summary) float64 { return float64(r.Followed) })),
		Delivered:   int64(pick(func(r summary) float64 { return float64(r.Delivered) })),
		Max:         pick(func(r summary) float64 { return r.Max }),
		ByStatus:    map[string]int64{},
	}
	for _, r := range runs {
		m.Errors += r.Errors
		for k, v := range r.ByStatus {
			m.ByStatus[k] += v
		}
		if r.Stopped != "" && m.Stopped == "" {
			m.Stopped = fmt.Sprintf("run %d: %s", r.Run, r.Stopped)
		}
	}
	return m
}

// JSON renders s as one line.
func (s summary) JSON() string {
	if s.ByStatus == nil {
		s.ByStatus = map[string]int64{}
	}
	b, err := json.Marshal(s)
	if err != nil { // cannot happen for this type
		return fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	return string(b)
}

// Text renders s as one human-readable line.
func (s summary) Text() string {
	var b strings.Builder
	if s.Label != "" {
		fmt.Fprintf(&b, "%s ", s.Label)
	}
	fmt.Fprintf(&b, "%s c=%d", s.Scenario, s.Concurrency)
	switch {
	case s.MedianOf > 0:
		fmt.Fprintf(&b, " median-of-%d", s.MedianOf)
	case s.Run > 0:
		fmt.Fprintf(&b, " run=%d", s.Run)
	}
	fmt.Fprintf(&b, " time=%.2fs req=%d req/s=%.1f", s.Seconds, s.Requests, s.RPS)
	if s.Events > 0 {
		fmt.Fprintf(&b, " events/s=%.1f", s.EPS)
	}
	if s.ItemsPerReq > 0 {
		fmt.Fprintf(&b, " items/list=%.1f", s.ItemsPerReq)
	}
	if s.XCache > 0 {
		fmt.Fprintf(&b, " cache-hits=%.0f%%", 100*s.CacheHits)
	}
	fmt.Fprintf(&b, " p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms load-cpu=%.2f errors=%d", s.P50, s.P90, s.P99, s.Max, s.LoadCores, s.Errors)
	if len(s.ByStatus) > 0 {
		keys := make([]string, 0, len(s.ByStatus))
		for k := range s.ByStatus {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s:%d", k, s.ByStatus[k])
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(parts, " "))
	}
	if s.Stopped != "" {
		fmt.Fprintf(&b, " stopped: %s", s.Stopped)
	}
	return b.String()
}
