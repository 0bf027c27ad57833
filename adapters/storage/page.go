package storage

// TrimPage cuts rows, read as one row more than a page of limit (limit+1)
// to learn whether another page follows, to the page, and returns the
// cursor after its last row when one does: after's, nil on the last page.
// limit must be positive.
func TrimPage[T, C any](rows []T, limit int, after func(T) *C) ([]T, *C) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	return rows, after(rows[limit-1])
}
