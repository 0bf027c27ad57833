package domain

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// every is a test schedule firing at each multiple of d since the zero
// time (for divisors of a day: on UTC clock boundaries), like cron's
// "*/n" specs.
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	d := time.Duration(e)
	return t.UTC().Truncate(d).Add(d)
}

// weekdays fires at 00:00 UTC, Monday to Friday (cron "0 0 * * 1-5").
type weekdays struct{}

func (weekdays) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	for t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		t = t.Add(24 * time.Hour)
	}
	return t
}

// yearly fires at 00:00 UTC on January 1st (cron "@yearly").
type yearly struct{}

func (yearly) Next(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)
}

// never never fires (cron "0 0 30 2 *": February 30th).
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

// stuck is a broken schedule whose Next does not advance.
type stuck struct{}

func (stuck) Next(t time.Time) time.Time { return t }

// counting counts Next calls, to show the work stays bounded.
type counting struct {
	Schedule
	calls int
}

func (c *counting) Next(t time.Time) time.Time { c.calls++; return c.Schedule.Next(t) }

// ts parses a UTC time written "2006-01-02 15:04[:05]".
func ts(s string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04:05.000", "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	panic("bad time " + s)
}

func fmtWindows(ws []Window) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.Start.Format("01-02 15:04:05") + "→" + w.End.Format("01-02 15:04:05")
	}
	return strings.Join(parts, ", ")
}

// win builds windows from consecutive boundaries.
func win(bounds ...string) []Window {
	var out []Window
	for i := 1; i < len(bounds); i++ {
		out = append(out, Window{Start: ts(bounds[i-1]), End: ts(bounds[i])})
	}
	return out
}

func TestDueWindows(t *testing.T) {
	const (
		minute = every(time.Minute)
		hour   = every(time.Hour)
		four   = every(4 * time.Hour) // the default, 0 */4 * * *
		day    = every(24 * time.Hour)
	)
	// 2025-10-10 is a Friday.
	for _, tc := range []struct {
		name        string
		s           Schedule
		watermark   string // "" for zero
		now         string
		max         int
		want        []Window
		wantSkipped int
	}{
		{"every minute, one window closed", minute, "2025-10-10 18:29", "2025-10-10 18:30:05", 42,
			win("2025-10-10 18:29", "2025-10-10 18:30"), 0},
		{"every minute, none closed yet", minute, "2025-10-10 18:30", "2025-10-10 18:30:59.999", 42, nil, 0},
		{"hourly, three missed", hour, "2025-10-10 15:00", "2025-10-10 18:10", 42,
			win("2025-10-10 15:00", "2025-10-10 16:00", "2025-10-10 17:00", "2025-10-10 18:00"), 0},
		{"4-hourly, now exactly on a tick: that window closed", four, "2025-10-10 08:00", "2025-10-10 16:00", 42,
			win("2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"), 0},
		{"4-hourly, 1ms before the tick: still open", four, "2025-10-10 08:00", "2025-10-10 15:59:59.999", 42,
			win("2025-10-10 08:00", "2025-10-10 12:00"), 0},
		{"4-hourly across UTC midnight", four, "2025-10-10 16:00", "2025-10-11 04:30", 42,
			win("2025-10-10 16:00", "2025-10-10 20:00", "2025-10-11 00:00", "2025-10-11 04:00"), 0},
		{"daily on UTC midnight", day, "2025-10-08 00:00", "2025-10-10 00:00:01", 42,
			win("2025-10-08 00:00", "2025-10-09 00:00", "2025-10-10 00:00"), 0},
		{"zero watermark: the latest closed window only", four, "", "2025-10-10 17:00", 42,
			win("2025-10-10 12:00", "2025-10-10 16:00"), 0},
		{"zero watermark, now on a tick", four, "", "2025-10-10 16:00", 42,
			win("2025-10-10 12:00", "2025-10-10 16:00"), 0},
		{"zero watermark, daily", day, "", "2025-10-10 09:00", 1,
			win("2025-10-09 00:00", "2025-10-10 00:00"), 0},
		{"catch-up bound: the newest max, the rest skipped", four, "2025-10-08 16:00", "2025-10-10 17:00", 3,
			win("2025-10-10 04:00", "2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"), 9},
		{"exactly max due: nothing skipped", four, "2025-10-10 04:00", "2025-10-10 17:00", 3,
			win("2025-10-10 04:00", "2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"), 0},
		{"max+1 due: the oldest skipped", four, "2025-10-10 00:00", "2025-10-10 17:00", 3,
			win("2025-10-10 04:00", "2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"), 1},
		{"max below 1 counts as 1", four, "2025-10-10 08:00", "2025-10-10 17:00", 0,
			win("2025-10-10 12:00", "2025-10-10 16:00"), 1},
		{"watermark on the latest tick: nothing due", four, "2025-10-10 16:00", "2025-10-10 19:59", 42, nil, 0},
		{"watermark in the future: nothing due", four, "2025-10-11 00:00", "2025-10-10 17:00", 42, nil, 0},
		{"watermark off-tick (schedule changed): [watermark, next tick) first", four, "2025-10-10 10:30", "2025-10-10 17:00", 42,
			win("2025-10-10 10:30", "2025-10-10 12:00", "2025-10-10 16:00"), 0},
		{"watermark off-tick, the next tick not yet passed", four, "2025-10-10 10:30", "2025-10-10 11:59", 42, nil, 0},
		{"watermark off-tick and a gap over the bound", four, "2025-10-10 02:30", "2025-10-10 17:00", 2,
			win("2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"), 2},
		{"weekdays only: Friday to Monday is one window", weekdays{}, "2025-10-10 00:00", "2025-10-13 10:00", 42,
			win("2025-10-10 00:00", "2025-10-13 00:00"), 0},
		{"weekdays only, zero watermark on a Sunday", weekdays{}, "", "2025-10-12 12:00", 42,
			win("2025-10-09 00:00", "2025-10-10 00:00"), 0},
		{"weekdays only, catch-up bound over a weekend", weekdays{}, "2025-10-06 00:00", "2025-10-14 01:00", 3,
			// Mon 6 → Tue 7 → … → Fri 10 → Mon 13 → Tue 14: six windows.
			win("2025-10-09 00:00", "2025-10-10 00:00", "2025-10-13 00:00", "2025-10-14 00:00"), 3},
		{"yearly (sparse), zero watermark", yearly{}, "", "2025-10-10 17:00", 42,
			win("2024-01-01 00:00", "2025-01-01 00:00"), 0},
		{"a schedule that never fires", never{}, "2025-10-10 00:00", "2025-10-10 17:00", 42, nil, 0},
		{"a schedule that never fires, zero watermark", never{}, "", "2025-10-10 17:00", 42, nil, 0},
		{"a schedule that does not advance", stuck{}, "", "2025-10-10 17:00", 42, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wm time.Time
			if tc.watermark != "" {
				wm = ts(tc.watermark)
			}
			got, skipped := DueWindows(tc.s, wm, ts(tc.now), tc.max)
			if fmtWindows(got) != fmtWindows(tc.want) || skipped != tc.wantSkipped {
				t.Errorf("DueWindows = [%s] skipped %d\nwant         [%s] skipped %d",
					fmtWindows(got), skipped, fmtWindows(tc.want), tc.wantSkipped)
			}
			for _, w := range got {
				if w.Start.Location() != time.UTC || w.End.Location() != time.UTC || !w.Valid() {
					t.Errorf("window %s: not a valid UTC window", w)
				}
			}
		})
	}
}

func TestDueWindowsNilSchedule(t *testing.T) {
	if got, skipped := DueWindows(nil, time.Time{}, time.Now(), 1); got != nil || skipped != 0 {
		t.Fatalf("DueWindows(nil) = %v, %d", got, skipped)
	}
}

// TestDueWindowsTimeZones: times in other zones are the same instants.
func TestDueWindowsTimeZones(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	wm := ts("2025-10-10 08:00").In(tokyo)
	now := ts("2025-10-10 17:00").In(tokyo)
	got, _ := DueWindows(every(4*time.Hour), wm, now, 42)
	if want := win("2025-10-10 08:00", "2025-10-10 12:00", "2025-10-10 16:00"); fmtWindows(got) != fmtWindows(want) {
		t.Fatalf("DueWindows = %s, want %s", fmtWindows(got), fmtWindows(want))
	}
}

// TestDueWindowsLongGap: a year of missed one-minute windows is bounded
// to the newest maxCatchup, the skipped ones counted exactly, and the
// search for the newest ones does not walk the whole year twice.
func TestDueWindowsLongGap(t *testing.T) {
	s := &counting{Schedule: every(time.Minute)}
	wm := ts("2024-10-10 17:00")
	now := ts("2025-10-10 17:00:30")
	got, skipped := DueWindows(s, wm, now, 42)
	total := int(now.Sub(wm) / time.Minute)
	if len(got) != 42 || skipped != total-42 {
		t.Fatalf("DueWindows = %d windows, %d skipped; want 42, %d", len(got), skipped, total-42)
	}
	if !got[41].End.Equal(ts("2025-10-10 17:00")) || !got[0].Start.Equal(ts("2025-10-10 16:18")) {
		t.Fatalf("windows %s", fmtWindows(got))
	}
	if s.calls > total+1000 {
		t.Errorf("%d calls of Next for %d ticks", s.calls, total)
	}
}

// TestDueWindowsProperties checks the policy against a brute-force
// enumeration of the schedule, on random watermarks and clocks.
func TestDueWindowsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := ts("2025-10-10 00:00")
	schedules := []Schedule{every(time.Minute), every(15 * time.Minute), every(time.Hour), every(4 * time.Hour), every(24 * time.Hour), weekdays{}}
	for i := range 2000 {
		s := schedules[i%len(schedules)]
		now := base.Add(time.Duration(r.Int64N(int64(20 * 24 * time.Hour))))
		var wm time.Time
		if r.IntN(5) > 0 {
			wm = now.Add(-time.Duration(r.Int64N(int64(10 * 24 * time.Hour))))
			if r.IntN(2) == 0 { // on a tick
				wm = s.Next(wm)
			}
		}
		maxCatchup := 1 + r.IntN(50)
		got, skipped := DueWindows(s, wm, now, maxCatchup)

		// Reference: every window after the watermark (or the latest one).
		var ref []Window
		if wm.IsZero() {
			var prev, last time.Time
			for t := s.Next(now.Add(-30 * 24 * time.Hour)); !t.After(now); t = s.Next(t) {
				prev, last = last, t
			}
			if !prev.IsZero() {
				ref = []Window{{prev, last}}
			}
		} else if wm.Before(now) {
			for start, t := wm, s.Next(wm); !t.After(now); start, t = t, s.Next(t) {
				ref = append(ref, Window{start, t})
			}
		}
		wantSkipped := max(len(ref)-maxCatchup, 0)
		ref = ref[wantSkipped:]
		if fmtWindows(got) != fmtWindows(ref) || skipped != wantSkipped {
			t.Fatalf("case %d (%T, watermark %v, now %v, max %d):\ngot  [%s] skipped %d\nwant [%s] skipped %d",
				i, s, wm, now, maxCatchup, fmtWindows(got), skipped, fmtWindows(ref), wantSkipped)
		}
		// Windows are contiguous, closed and after the watermark.
		for j, w := range got {
			if j > 0 && !w.Start.Equal(got[j-1].End) {
				t.Fatalf("case %d: windows not contiguous: %s", i, fmtWindows(got))
			}
			if w.End.After(now) || (!wm.IsZero() && w.Start.Before(wm)) {
				t.Fatalf("case %d: window %s not closed or before the watermark", i, w)
			}
		}
	}
}

func TestWindow(t *testing.T) {
	w := Window{Start: ts("2025-10-10 08:00"), End: ts("2025-10-10 12:00")}
	for _, tc := range []struct {
		t    string
		want bool
	}{{"2025-10-10 07:59:59.999", false}, {"2025-10-10 08:00", true}, {"2025-10-10 11:59:59.999", true}, {"2025-10-10 12:00", false}} {
		if got := w.Contains(ts(tc.t)); got != tc.want {
			t.Errorf("Contains(%s) = %v", tc.t, got)
		}
	}
	if !w.Valid() || (Window{Start: w.End, End: w.Start}).Valid() || (Window{}).Valid() {
		t.Error("Valid")
	}
	if got := fmt.Sprint(w); got != "[2025-10-10T08:00:00Z, 2025-10-10T12:00:00Z)" {
		t.Errorf("String = %s", got)
	}
}
