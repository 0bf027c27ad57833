package main

import "testing"

func TestGCSettings(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		percent int
		limit   int64
		name    string
	}{
		{map[string]string{}, defaultGCPercent, defaultMemoryLimit, "defaults"},
		{map[string]string{"GOGC": "100"}, -1, defaultMemoryLimit, "GOGC set"},
		{map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, -1, -1, "both set"},
		{map[string]string{"GOMEMLIMIT": "200MiB"}, defaultGCPercent, -1, "GOMEMLIMIT set"},
	} {
		p, l := gcSettings(func(k string) string { return tc.env[k] })
		if p != tc.percent || l != tc.limit {
			t.Errorf("%s: gcSettings = %d, %d; want %d, %d", tc.name, p, l, tc.percent, tc.limit)
		}
	}
}
