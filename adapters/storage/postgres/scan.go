package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

// eventCols are the columns of an event, in the order scanEvent reads them.
const eventCols = `id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata`

// textCols are eventCols with the times rendered as text, for reads of
// many rows (timeScanner parses either). The aliases differ from the
// column names so that ORDER BY recorded_at still names the column, not
// the text.
const textCols = `id, user_id, action, status, occurred_at::text AS occurred_at_text, ` +
	`recorded_at::text AS recorded_at_text, updated_at::text AS updated_at_text, metadata`

// prefixed returns eventCols qualified with alias.
func prefixed(alias string) string {
	return alias + `.id, ` + alias + `.user_id, ` + alias + `.action, ` + alias + `.status, ` +
		alias + `.occurred_at, ` + alias + `.recorded_at, ` + alias + `.updated_at, ` + alias + `.metadata`
}

// idScanner reads a uuid column into a domain.ID.
type idScanner struct{ id *domain.ID }

func (s idScanner) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("postgres: cannot read %T as a uuid", src)
	}
	id, ok := parseUUID(b)
	if !ok {
		return fmt.Errorf("postgres: bad uuid %q", b)
	}
	*s.id = id
	return nil
}

// parseUUID reads PostgreSQL's rendering of a uuid (lower-case, hyphens
// at 8, 13, 18 and 23) without allocating.
func parseUUID(b []byte) (domain.ID, bool) {
	var id domain.ID
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i--
			continue
		}
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
	}
	return id, j == 16
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// timeScanner reads a timestamptz into a UTC time: as the driver parsed
// it, or as text (a column cast to text, which the list reads: parsing
// PostgreSQL's rendering here costs a fraction of what the driver's
// general parser does).
type timeScanner struct{ t *time.Time }

func (s timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*s.t = v.UTC()
		return nil
	case string: // lib/pq's value of a text column
		return s.text(v)
	case []byte:
		return s.text(string(v))
	}
	return fmt.Errorf("postgres: cannot read %T as a time", src)
}

func (s timeScanner) text(v string) error {
	if t, ok := parsePGTime(v); ok {
		*s.t = t
		return nil
	}
	t, err := pq.ParseTimestamp(nil, v)
	if err != nil {
		return fmt.Errorf("postgres: bad time %q: %w", v, err)
	}
	*s.t = t.UTC()
	return nil
}

// parsePGTime reads a timestamptz as PostgreSQL renders it with
// DateStyle ISO and TimeZone UTC (every session's): "2006-01-02
// 15:04:05[.ffffff]+00". ok is false for anything else (years past 9999,
// BC, infinity), which the driver's parser then reads.
func parsePGTime(b string) (time.Time, bool) {
	n := len(b)
	if n < 22 || b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' ||
		b[n-3] != '+' || b[n-2] != '0' || b[n-1] != '0' {
		return time.Time{}, false
	}
	num := func(i, w int) (int, bool) {
		v := 0
		for _, c := range b[i : i+w] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : n-3]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 7 {
			return time.Time{}, false
		}
		f, ok := num(20, len(frac)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 9 - (len(frac) - 1) {
			f *= 10
		}
		nsec = f
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// jsonScanner reads the metadata column (json since schema version 2) as
// the bytes stored: the domain's canonical form, written once by the app
// (compact, keys sorted) and kept byte for byte by json, so a read neither
// decodes nor re-encodes it. The driver reuses its buffer, hence the copy.
type jsonScanner struct{ raw *json.RawMessage }

func (s jsonScanner) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		*s.raw = bytes.Clone(v)
	case string:
		*s.raw = json.RawMessage(v)
	case nil:
		*s.raw = domain.EmptyMetadata()
	default:
		return fmt.Errorf("postgres: cannot read %T as JSON", src)
	}
	return nil
}

// statusScanner reads a status column, without allocating for the three
// statuses there are.
type statusScanner struct{ s *domain.Status }

func (s statusScanner) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		*s.s = internStatus(v)
	case string:
		*s.s = domain.Status(v)
	case nil:
		*s.s = ""
	default:
		return fmt.Errorf("postgres: cannot read %T as a status", src)
	}
	return nil
}

func internStatus(v []byte) domain.Status {
	switch string(v) {
	case string(domain.StatusPending):
		return domain.StatusPending
	case string(domain.StatusInProgress):
		return domain.StatusInProgress
	case string(domain.StatusDone):
		return domain.StatusDone
	}
	return domain.Status(v)
}

// actionScanner reads an action column; the default vocabulary's actions
// are shared strings rather than one allocation per row.
type actionScanner struct{ a *domain.Action }

var knownActions = func() map[string]domain.Action {
	m := make(map[string]domain.Action, len(domain.DefaultActions))
	for _, a := range domain.DefaultActions {
		m[string(a)] = a
	}
	return m
}()

func (s actionScanner) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		if a, ok := knownActions[string(v)]; ok {
			*s.a = a
		} else {
			*s.a = domain.Action(v)
		}
	case string:
		*s.a = domain.Action(v)
	default:
		return fmt.Errorf("postgres: cannot read %T as an action", src)
	}
	return nil
}

// eventDest returns scan destinations for eventCols into e.
func eventDest(e *domain.Event) []any {
	return []any{
		idScanner{&e.ID}, &e.UserID, actionScanner{&e.Action}, statusScanner{&e.Status},
		timeScanner{&e.OccurredAt}, timeScanner{&e.RecordedAt}, timeScanner{&e.UpdatedAt},
		jsonScanner{&e.Metadata},
	}
}

// pgTimeText renders t for a text array literal of timestamptz.
func pgTimeText(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999Z")
}
