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
		*s.raw = json.RawMessage("{}")
	default:
		return fmt.Errorf("postgres: cannot read %T as JSON", src)
	}
	return nil
}

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
