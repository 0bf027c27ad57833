package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/activityd/activityd/domain"
)

// eventCols are the columns of an event, in the order scanEvent reads them.
const eventCols = `id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata`

// prefixed returns eventCols qualified with alias.
func prefixed(alias string) string {
	return alias + `.id, ` + alias + `.user_id, ` + alias + `.action, ` + alias + `.status, ` +
		alias + `.occurred_at, ` + alias + `.recorded_at, ` + alias + `.updated_at, ` + alias + `.metadata`
}

// idScanner reads a uuid column into a domain.ID.
type idScanner struct{ id *domain.ID }

func (s idScanner) Scan(src any) error {
	var str string
	switch v := src.(type) {
	case []byte:
		str = string(v)
	case string:
		str = v
	default:
		return fmt.Errorf("postgres: cannot read %T as a uuid", src)
	}
	id, err := domain.ParseID(str)
	if err != nil {
		return fmt.Errorf("postgres: bad uuid %q", str)
	}
	*s.id = id
	return nil
}

// timeScanner reads a timestamptz into a UTC time.
type timeScanner struct{ t *time.Time }

func (s timeScanner) Scan(src any) error {
	t, ok := src.(time.Time)
	if !ok {
		return fmt.Errorf("postgres: cannot read %T as a time", src)
	}
	*s.t = t.UTC()
	return nil
}

// jsonScanner reads a jsonb object into the domain's canonical form
// (domain.CanonicalObject: compact, keys sorted, Go's escaping), so metadata
// reads back byte for byte as the app validated it, whichever store kept
// it. jsonb itself keeps neither key order nor spacing, and writes a
// number's exponent out (1e2 comes back as 100).
type jsonScanner struct{ raw *json.RawMessage }

func (s jsonScanner) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	case nil:
		*s.raw = json.RawMessage("{}")
		return nil
	default:
		return fmt.Errorf("postgres: cannot read %T as JSON", src)
	}
	if bytes.Equal(b, emptyObject) {
		*s.raw = json.RawMessage("{}")
		return nil
	}
	canon, err := domain.CanonicalObject(b)
	if err != nil {
		return fmt.Errorf("postgres: metadata from the server: %w", err)
	}
	*s.raw = canon
	return nil
}

var emptyObject = []byte("{}")

// statusScanner reads a status column.
type statusScanner struct{ s *domain.Status }

func (s statusScanner) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		*s.s = domain.Status(v)
	case string:
		*s.s = domain.Status(v)
	case nil:
		*s.s = ""
	default:
		return fmt.Errorf("postgres: cannot read %T as a status", src)
	}
	return nil
}

// eventDest returns scan destinations for eventCols into e.
func eventDest(e *domain.Event) []any {
	return []any{
		idScanner{&e.ID}, &e.UserID, (*string)(&e.Action), statusScanner{&e.Status},
		timeScanner{&e.OccurredAt}, timeScanner{&e.RecordedAt}, timeScanner{&e.UpdatedAt},
		jsonScanner{&e.Metadata},
	}
}

// pgTimeText renders t for a text array literal of timestamptz.
func pgTimeText(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999Z")
}
