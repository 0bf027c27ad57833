package predecessors

import (
	"fmt"
	"strconv"
	"time"
)

// Users over 2^31 (the event-tracking service overflowed there) and 2^40.
const (
	UserOver2p31 int64 = 1<<31 + 5
	User2p40     int64 = 1 << 40
)

// Vocabulary is the default action vocabulary, from both predecessors.
var Vocabulary = []string{"created", "updated", "deleted", "viewed", "login", "logout", "upload_file"}

func utc(y int, mo time.Month, d, h, mi, s, us int) time.Time {
	return time.Date(y, mo, d, h, mi, s, us*1000, time.UTC)
}

// AwkwardLogs returns activity-logger rows that cover what the import must
// cope with: every status (PENDING, IN_PROGRESS, DONE, and CANCELLED, which
// is none), actions of the vocabulary in upper, lower and mixed case and
// one outside it ("dance"), metadata as an object, a nested object, SQL
// NULL, JSON null, a string, an array, a number, and (SQLite only) text
// that is not JSON; users 1, 6, 2^31+5, 2^40, 0 and -1; times naive, with
// Z, +05:30, -08:00, +00, with and without fractions, one with
// microseconds; ids with gaps; and (SQLite only) a time that does not
// parse. The Want times are worked out by hand.
func AwkwardLogs() []LogRow {
	return []LogRow{
		{ID: 1, UserID: 1, Action: "LOGIN", Timestamp: "2025-10-10 18:30:00.123456",
			Metadata: `{"ip": "192.168.0.1", "device": "Chrome"}`, Status: "PENDING",
			Want: utc(2025, 10, 10, 18, 30, 0, 123456)},
		{ID: 2, UserID: 6, Action: "logout", Timestamp: "2025-10-10T19:00:00Z",
			Metadata: `{"device": {"os": "iOS", "version": 17}, "tags": ["a", "b"], "geo": {"lat": 48.85, "lon": 2.35}}`,
			Status:   "IN_PROGRESS", Want: utc(2025, 10, 10, 19, 0, 0, 0)},
		{ID: 5, UserID: UserOver2p31, Action: "UPLOAD_FILE", Timestamp: "2025-10-11 08:15:30+05:30",
			Metadata: nil, Status: "DONE", Want: utc(2025, 10, 11, 2, 45, 30, 0)},
		{ID: 6, UserID: User2p40, Action: "created", Timestamp: "2025-10-11T23:59:59.5-08:00",
			Metadata: `null`, Status: "PENDING", Want: utc(2025, 10, 12, 7, 59, 59, 500000)},
		{ID: 9, UserID: 0, Action: "Updated", Timestamp: "2025-10-12 00:00:00",
			Metadata: `"just a string"`, Status: "DONE", Want: utc(2025, 10, 12, 0, 0, 0, 0)},
		{ID: 10, UserID: -1, Action: "DELETED", Timestamp: "2025-10-12T01:02:03.000001+00:00",
			Metadata: `[1, "two", {"three": 3}]`, Status: "CANCELLED", Want: utc(2025, 10, 12, 1, 2, 3, 1)},
		{ID: 11, UserID: 6, Action: "viewed", Timestamp: "2025-10-12T10:00:00-08:00",
			Metadata: `42`, Status: "IN_PROGRESS", Want: utc(2025, 10, 12, 18, 0, 0, 0)},
		{ID: 20, UserID: 6, Action: "dance", Timestamp: "2025-10-13 12:00:00.999999",
			Metadata: `{}`, Status: "PENDING", Want: utc(2025, 10, 13, 12, 0, 0, 999999)},
		{ID: 21, UserID: 1, Action: "login", Timestamp: "2025-10-13 13:00:00",
			Metadata: `{"unclosed": `, Status: "PENDING", SQLiteOnly: true, Want: utc(2025, 10, 13, 13, 0, 0, 0)},
		{ID: 22, UserID: 1, Action: "logout", Timestamp: "13/10/2025 14:00",
			Metadata: `{}`, Status: "DONE", SQLiteOnly: true},
		{ID: 30, UserID: 1, Action: "upload_file", Timestamp: "2025-10-14 09:00:00+00",
			Metadata: `{"file": "report.pdf", "size": 1024}`, Status: "DONE", Want: utc(2025, 10, 14, 9, 0, 0, 0)},
	}
}

// AwkwardTokens returns DRF tokens of users 1, 6 and 2^40, with times
// naive, with an offset, and with microseconds.
func AwkwardTokens() []TokenRow {
	return []TokenRow{
		{Key: "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", UserID: 1, Created: "2025-01-02 03:04:05.678901",
			Want: utc(2025, 1, 2, 3, 4, 5, 678901)},
		{Key: "2c1b5e6f0a7d8c9b3e4f5a6b7c8d9e0f1a2b3c4d", UserID: 6, Created: "2025-02-03T04:05:06+01:00",
			Want: utc(2025, 2, 3, 3, 5, 6, 0)},
		{Key: "0123456789abcdef0123456789abcdef01234567", UserID: User2p40, Created: "2025-03-04 05:06:07",
			Want: utc(2025, 3, 4, 5, 6, 7, 0)},
	}
}

// AwkwardEvents returns event-tracking rows as AwkwardLogs does (no status:
// the service had none), with created_at present or NULL, and one
// event_action_timestamp of 'infinity', which PostgreSQL holds but which
// names no instant. The ids are integers with gaps; UUIDs swaps them.
func AwkwardEvents() []EventRow {
	return []EventRow{
		{ID: "1", UserID: 6, Action: "deleted", EventActionTimestamp: "2025-10-10T18:30:00Z",
			Metadata: `{"ip": "192.168.1.10", "device": "iPhone 14"}`, CreatedAt: "2025-10-10T18:30:01.5Z",
			WantOccurredAt: utc(2025, 10, 10, 18, 30, 0, 0), WantRecordedAt: utc(2025, 10, 10, 18, 30, 1, 500000)},
		{ID: "2", UserID: 1, Action: "CREATED", EventActionTimestamp: "2025-10-10T12:00:00+05:30",
			Metadata: `{"device": {"os": "Android", "build": {"major": 14}}, "tags": []}`, CreatedAt: "",
			WantOccurredAt: utc(2025, 10, 10, 6, 30, 0, 0), WantRecordedAt: utc(2025, 10, 10, 6, 30, 0, 0)},
		{ID: "4", UserID: UserOver2p31, Action: "Viewed", EventActionTimestamp: "2025-10-11T08:00:00.123456-08:00",
			Metadata: nil, CreatedAt: "2025-10-11 16:00:01",
			WantOccurredAt: utc(2025, 10, 11, 16, 0, 0, 123456), WantRecordedAt: utc(2025, 10, 11, 16, 0, 1, 0)},
		{ID: "7", UserID: User2p40, Action: "login", EventActionTimestamp: "2025-10-12 09:00:00",
			Metadata: `null`, CreatedAt: "2025-10-12 09:00:00.000001",
			WantOccurredAt: utc(2025, 10, 12, 9, 0, 0, 0), WantRecordedAt: utc(2025, 10, 12, 9, 0, 0, 1)},
		{ID: "8", UserID: 0, Action: "upload_file", EventActionTimestamp: "2025-10-12T23:30:00-08:00",
			Metadata: `"a string"`, CreatedAt: "2025-10-13T07:30:00Z",
			WantOccurredAt: utc(2025, 10, 13, 7, 30, 0, 0), WantRecordedAt: utc(2025, 10, 13, 7, 30, 0, 0)},
		{ID: "9", UserID: -1, Action: "logout", EventActionTimestamp: "2025-10-13T00:00:00Z",
			Metadata: `["a", "b"]`, CreatedAt: "2025-10-13T00:00:02Z",
			WantOccurredAt: utc(2025, 10, 13, 0, 0, 0, 0), WantRecordedAt: utc(2025, 10, 13, 0, 0, 2, 0)},
		{ID: "12", UserID: 6, Action: "updated", EventActionTimestamp: "2025-10-13T10:00:00.5+02:00",
			Metadata: `3.5`, CreatedAt: "",
			WantOccurredAt: utc(2025, 10, 13, 8, 0, 0, 500000), WantRecordedAt: utc(2025, 10, 13, 8, 0, 0, 500000)},
		{ID: "13", UserID: 6, Action: "dance", EventActionTimestamp: "2025-10-14T10:00:00Z",
			Metadata: `{}`, CreatedAt: "2025-10-14T10:00:00Z",
			WantOccurredAt: utc(2025, 10, 14, 10, 0, 0, 0), WantRecordedAt: utc(2025, 10, 14, 10, 0, 0, 0)},
		{ID: "15", UserID: 6, Action: "Deleted", EventActionTimestamp: "infinity",
			Metadata: `{"note": "a time that names no instant"}`, CreatedAt: ""},
	}
}

// AwkwardCounts returns user_event_counts rows: users 6, 2^40 and 0, ids
// with a gap.
func AwkwardCounts() []CountRow {
	return []CountRow{
		{ID: 1, UserID: 6, Count: 3, CreatedAt: "2025-10-10T20:00:00Z", Want: utc(2025, 10, 10, 20, 0, 0, 0)},
		{ID: 2, UserID: User2p40, Count: 1, CreatedAt: "2025-10-11 00:00:00.25+05:30", Want: utc(2025, 10, 10, 18, 30, 0, 250000)},
		{ID: 4, UserID: 0, Count: 0, CreatedAt: "2025-10-11T04:00:00Z", Want: utc(2025, 10, 11, 4, 0, 0, 0)},
	}
}

// UUIDs returns events with each id replaced by a UUID (for
// EventSchema.UUIDIDs), the same one for the same id on every call. Their
// order differs from the integer ids'.
func UUIDs(events []EventRow) []EventRow {
	out := make([]EventRow, len(events))
	for i, e := range events {
		n, _ := strconv.ParseUint(e.ID, 10, 64)
		// Scramble the leading digits so the UUIDs do not sort like the ids.
		e.ID = fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(n*2654435761), n)
		out[i] = e
	}
	return out
}

// ManyLogs returns n plain activity-logger rows (more than one page of the
// reader for n > 1000): odd ids 1, 3, 5, …, users 1 to 5, the vocabulary's
// actions and the statuses in turn, one second apart with microseconds,
// metadata {"n": i}.
func ManyLogs(n int) []LogRow {
	base := utc(2024, 1, 1, 0, 0, 0, 0)
	statuses := []string{"PENDING", "IN_PROGRESS", "DONE"}
	rows := make([]LogRow, n)
	for i := range rows {
		at := base.Add(time.Duration(i)*time.Second + time.Duration(i%1000)*time.Microsecond)
		rows[i] = LogRow{
			ID:        int64(2*i + 1),
			UserID:    int64(i%5 + 1),
			Action:    Vocabulary[i%len(Vocabulary)],
			Timestamp: at.Format("2006-01-02 15:04:05.000000"),
			Metadata:  fmt.Sprintf(`{"n": %d}`, i),
			Status:    statuses[i%len(statuses)],
			Want:      at,
		}
	}
	return rows
}

// ManyEvents returns n plain event-tracking rows: ids 2, 5, 8, …, users 1
// to 5, the vocabulary's actions in turn, one second apart, created_at a
// millisecond later or (every tenth) NULL, metadata {"n": i}.
func ManyEvents(n int) []EventRow {
	base := utc(2024, 1, 1, 0, 0, 0, 0)
	rows := make([]EventRow, n)
	for i := range rows {
		at := base.Add(time.Duration(i) * time.Second)
		rec, created := at.Add(time.Millisecond), at.Add(time.Millisecond).Format(time.RFC3339Nano)
		if i%10 == 0 {
			rec, created = at, ""
		}
		rows[i] = EventRow{
			ID:                   strconv.Itoa(3*i + 2),
			UserID:               int64(i%5 + 1),
			Action:               Vocabulary[i%len(Vocabulary)],
			EventActionTimestamp: at.Format(time.RFC3339Nano),
			Metadata:             fmt.Sprintf(`{"n": %d}`, i),
			CreatedAt:            created,
			WantOccurredAt:       at,
			WantRecordedAt:       rec,
		}
	}
	return rows
}
