package sqlite

import (
	"fmt"
	"strings"
	"time"

	"github.com/activityd/activityd/domain"
)

const eventColumns = `id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata`

// eventRow is an events row as stored.
type eventRow struct {
	ID         []byte `db:"id"`
	UserID     int64  `db:"user_id"`
	Action     string `db:"action"`
	Status     string `db:"status"`
	OccurredAt int64  `db:"occurred_at"`
	RecordedAt int64  `db:"recorded_at"`
	UpdatedAt  int64  `db:"updated_at"`
	Metadata   []byte `db:"metadata"`
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func (r eventRow) event() (domain.Event, error) {
	var e domain.Event
	if len(r.ID) != len(e.ID) {
		return e, fmt.Errorf("event id of %d bytes", len(r.ID))
	}
	copy(e.ID[:], r.ID)
	e.UserID = r.UserID
	e.Action = domain.Action(r.Action)
	e.Status = domain.Status(r.Status)
	e.OccurredAt = fromMicros(r.OccurredAt)
	e.RecordedAt = fromMicros(r.RecordedAt)
	e.UpdatedAt = fromMicros(r.UpdatedAt)
	e.Metadata = r.Metadata
	return e, nil
}

// stored returns e as it reads back once stored: times in UTC at
// microsecond precision, metadata never empty.
func stored(e domain.Event) domain.Event {
	e.OccurredAt = fromMicros(micros(e.OccurredAt))
	e.RecordedAt = fromMicros(micros(e.RecordedAt))
	e.UpdatedAt = fromMicros(micros(e.UpdatedAt))
	e.Metadata = append([]byte(nil), e.MetadataOrEmpty()...)
	return e
}

func eventArgs(args []any, e domain.Event) []any {
	return append(args, e.ID[:], e.UserID, string(e.Action), string(e.Status),
		micros(e.OccurredAt), micros(e.RecordedAt), micros(e.UpdatedAt), string(e.MetadataOrEmpty()))
}

// multiRow returns head followed by n copies of row, comma-separated.
func multiRow(head, row string, n int) string {
	var b strings.Builder
	b.Grow(len(head) + n*(len(row)+2))
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
