package domain

import (
	"fmt"
	"time"
)

// Schedule says when the counting job runs: Next returns the first
// activation strictly after t, or the zero time when there is none.
// robfig/cron/v3's cron.Schedule satisfies it; parsing a cron spec happens
// outside the domain (cmd/activityd), and schedules are evaluated in UTC
// (the policy below only ever passes UTC times).
type Schedule interface {
	Next(t time.Time) time.Time
}

// Window is a counting window: the events whose recorded_at lies in
// [Start, End) (half-open, so an event on a boundary belongs to exactly
// one window).
type Window struct {
	Start, End time.Time
}

// Valid reports whether the window is non-empty.
func (w Window) Valid() bool { return w.End.After(w.Start) }

// Contains reports whether t lies in [Start, End).
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

func (w Window) String() string {
	return fmt.Sprintf("[%s, %s)", FormatTime(w.Start), FormatTime(w.End))
}

// MaxScheduleLookback bounds how far back DueWindows searches for the
// schedule's activations. A schedule that does not fire twice within it
// (one that never fires, or whose windows are longer than about five
// years) has no due windows.
const MaxScheduleLookback = 10 * 366 * 24 * time.Hour

// firstLookback is where the doubling search for recent ticks starts; cron
// schedules have a resolution of a second, their windows at least that.
const firstLookback = time.Minute

// DueWindows is the counting policy: which windows are due at now, given
// the schedule s and the watermark (the End of the last window computed;
// zero when none ever was).
//
// Consecutive activations ("ticks") of the schedule cut time into windows
// [tick_n, tick_n+1). A window is due once it has closed (End <= now) and
// lies after the watermark. due lists them oldest first, which is the
// order to compute them in: after each, the watermark moves to its End.
//
//   - Zero watermark (counting never ran): only the latest closed window
//     is due. Counting starts with the window before the first run, which
//     holds the events recorded before the service first started.
//   - More than maxCatchup windows due (the job did not run for a while):
//     the newest maxCatchup are due and skipped says how many older ones
//     were left out. maxCatchup bounds how far back a gap is caught up; a
//     value below 1 counts as 1.
//   - A watermark that is not on a tick (the schedule was changed): the
//     first window is [watermark, next tick), so no event is counted twice
//     or lost across the change.
//   - A watermark at or after the latest closed window's end (including
//     one in the future, after the clock went back): nothing is due.
//
// Cron schedules offer no Prev, so the latest ticks at or before now are
// found by walking forward from now - lookback, doubling the lookback
// until enough ticks are found, up to MaxScheduleLookback; a schedule
// whose Next stops advancing (or returns the zero time) ends the walk.
func DueWindows(s Schedule, watermark, now time.Time, maxCatchup int) (due []Window, skipped int) {
	if s == nil {
		return nil, 0
	}
	maxCatchup = max(maxCatchup, 1)
	now = now.UTC()
	if watermark.IsZero() {
		ticks, _ := latestTicks(s, time.Time{}, now, 2)
		if len(ticks) < 2 {
			return nil, 0
		}
		return []Window{{Start: ticks[0], End: ticks[1]}}, 0
	}
	watermark = watermark.UTC()
	if !watermark.Before(now) {
		return nil, 0
	}
	// The newest maxCatchup+1 ticks in (watermark, now]; complete when they
	// are every tick there.
	ticks, complete := latestTicks(s, watermark, now, maxCatchup+1)
	if len(ticks) == 0 {
		return nil, 0
	}
	bounds := ticks
	if complete {
		bounds = append([]time.Time{watermark}, ticks...)
	} else {
		// More than maxCatchup windows are due: count the older ones by
		// walking from the watermark to the first tick kept.
		for t := s.Next(watermark); !t.IsZero() && t.Before(ticks[0]); {
			skipped++
			n := s.Next(t)
			if n.IsZero() || !n.After(t) {
				break
			}
			t = n
		}
		// [watermark or a tick, ticks[0]) is the newest of those.
		skipped++
	}
	if n := len(bounds) - 1; n > maxCatchup {
		skipped += n - maxCatchup
		bounds = bounds[n-maxCatchup:]
	}
	due = make([]Window, 0, len(bounds)-1)
	for i := 1; i < len(bounds); i++ {
		due = append(due, Window{Start: bounds[i-1], End: bounds[i]})
	}
	return due, skipped
}

// latestTicks returns the newest n ticks of s in (after, now], oldest
// first (after zero: no lower limit). complete reports that these are all
// the ticks in (after, now]: the search reached back to after and kept
// every tick it found.
func latestTicks(s Schedule, after, now time.Time, n int) (ticks []time.Time, complete bool) {
	for d := firstLookback; ; d *= 2 {
		from := now.Add(-d)
		reached := false
		if !after.IsZero() && !from.After(after) {
			from, reached = after, true
		}
		ticks = ticks[:0]
		total := 0
		for t := s.Next(from); !t.IsZero() && !t.After(now); {
			total++
			ticks = append(ticks, t.UTC())
			if len(ticks) > 2*n { // keep the newest n, in amortised O(1)
				ticks = append(ticks[:0], ticks[len(ticks)-n:]...)
			}
			next := s.Next(t)
			if !next.After(t) { // a schedule that stopped advancing
				break
			}
			t = next
		}
		if len(ticks) > n {
			ticks = ticks[len(ticks)-n:]
		}
		if len(ticks) == n || reached || d >= MaxScheduleLookback {
			return ticks, reached && total == len(ticks)
		}
	}
}

// WindowAt returns the window of s that holds t: from the latest tick at
// or before t to the tick after it. ok is false when s has no tick within
// MaxScheduleLookback before t, or none after it.
func WindowAt(s Schedule, t time.Time) (w Window, ok bool) {
	if s == nil {
		return Window{}, false
	}
	ticks, _ := latestTicks(s, time.Time{}, t.UTC(), 1)
	if len(ticks) == 0 {
		return Window{}, false
	}
	end := s.Next(ticks[0])
	if end.IsZero() || !end.After(ticks[0]) {
		return Window{}, false
	}
	return Window{Start: ticks[0], End: end.UTC()}, true
}
