package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/activityd/activityd/domain"
)

// canonicalMigration is schema version 3, in Go: it rewrites the metadata
// of events stored under version 1 (jsonb's rendering, e.g.
// {"ip": "10.0.0.1", "device": "x"}) in the domain's canonical form, which
// reads pass through as bytes from version 2 on. jsonb renders every
// non-empty object with `": "` after a key and canonical JSON has that only
// inside a string, so the filter finds every row to rewrite (and at worst
// a canonical one again, which is left as it is).
func canonicalMigration() *goose.Migration {
	return goose.NewGoMigration(3, &goose.GoFunc{RunTx: canonicalizeMetadata}, &goose.GoFunc{RunTx: func(context.Context, *sql.Tx) error { return nil }})
}

// canonicalBatch is how many rows one round of the rewrite reads.
const canonicalBatch = 1000

func canonicalizeMetadata(ctx context.Context, tx *sql.Tx) error {
	var (
		afterT  time.Time
		afterID string
		first   = true
	)
	for {
		rows, err := tx.QueryContext(ctx, `
			SELECT recorded_at, id::text, metadata::text FROM events
			WHERE metadata::text LIKE '%": %' AND ($1 OR (recorded_at, id) > ($2::timestamptz, $3::uuid))
			ORDER BY recorded_at, id LIMIT `+fmt.Sprint(canonicalBatch),
			first, afterT, nullUUID(afterID))
		if err != nil {
			return fmt.Errorf("canonical metadata: %w", err)
		}
		var (
			ids, mds pq.StringArray
			rts      pq.StringArray
			n        int
		)
		for rows.Next() {
			var (
				rt     time.Time
				id, md string
			)
			if err := rows.Scan(&rt, &id, &md); err != nil {
				rows.Close()
				return fmt.Errorf("canonical metadata: %w", err)
			}
			n++
			afterT, afterID, first = rt, id, false
			canon, err := domain.CanonicalObject([]byte(md))
			if err != nil {
				rows.Close()
				return fmt.Errorf("canonical metadata of event %s: %w", id, err)
			}
			if string(canon) != md {
				ids, rts, mds = append(ids, id), append(rts, pgTimeText(rt)), append(mds, string(canon))
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("canonical metadata: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("canonical metadata: %w", err)
		}
		if len(ids) > 0 {
			if _, err := tx.ExecContext(ctx, `
				UPDATE events e SET metadata = v.md
				FROM unnest($1::uuid[], $2::timestamptz[], $3::json[]) AS v(id, rt, md)
				WHERE e.id = v.id AND e.recorded_at = v.rt`, ids, rts, mds); err != nil {
				return fmt.Errorf("canonical metadata: %w", err)
			}
		}
		if n < canonicalBatch {
			return nil
		}
	}
}

// nullUUID is s, or a placeholder uuid before the first row.
func nullUUID(s string) string {
	if s == "" {
		return "00000000-0000-0000-0000-000000000000"
	}
	return s
}
