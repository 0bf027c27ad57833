package predecessor

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// table is one table a predecessor's database must have, with the columns
// the reader uses.
type table struct {
	name    string
	columns []string
}

// tables lists, per kind, what Open checks for.
var tables = map[Kind][]table{
	ActivityLogger: {
		{"activitylog_useractivitylog", []string{"id", "user_id", "action", "timestamp", "metadata", "status"}},
		{"authtoken_token", []string{"key", "created", "user_id"}},
	},
	EventTracking: {
		{"events", []string{"event_id", "user_id", "event_action_timestamp", "action", "metadata", "created_at"}},
		{"user_event_counts", []string{"id", "user_id", "count", "created_at"}},
	},
}

// integerTypes are the column types of an integer event_id.
var integerTypes = []string{"integer", "bigint", "smallint", "int", "int2", "int4", "int8", "serial", "bigserial"}

// check verifies that the source has kind's tables and columns, naming
// everything missing in one error, and learns the type of event_id.
func (s *Source) check(ctx context.Context) error {
	var missing []string
	err := s.read(ctx, func(tx *sql.Tx) error {
		for _, t := range tables[s.kind] {
			cols, err := s.columns(ctx, tx, t.name)
			if err != nil {
				return fmt.Errorf("columns of %s: %w", t.name, err)
			}
			if len(cols) == 0 {
				missing = append(missing, "table "+t.name)
				continue
			}
			var lacks []string
			for _, c := range t.columns {
				if _, ok := cols[c]; !ok {
					lacks = append(lacks, c)
				}
			}
			if len(lacks) > 0 {
				missing = append(missing, fmt.Sprintf("column %s of table %s", strings.Join(lacks, ", "), t.name))
			}
			if t.name == "events" {
				typ := strings.ToLower(cols["event_id"])
				s.intIDs = slices.Contains(integerTypes, typ) || strings.Contains(typ, "int")
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("predecessor: read the %s schema: %w", s.kind, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("predecessor: not an %s database: it lacks %s", s.kind, strings.Join(missing, "; "))
	}
	return nil
}

// columns returns the columns of table name (as the session resolves it)
// with their declared types; none when there is no such table.
func (s *Source) columns(ctx context.Context, tx *sql.Tx, name string) (map[string]string, error) {
	q := `SELECT name, type FROM pragma_table_info(?)`
	if s.dialect == postgresDialect {
		// to_regclass resolves the name through search_path, as the reads do.
		q = `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`
	}
	rows, err := tx.QueryContext(ctx, q, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return nil, err
		}
		cols[strings.ToLower(col)] = typ
	}
	return cols, rows.Err()
}
