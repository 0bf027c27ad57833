package storage

// Ready appends to batch whatever ch holds ready, without waiting, until
// batch holds limit items or ch is empty or closed: how a group commit
// takes the requests queued behind the first.
func Ready[T any](ch <-chan T, batch []T, limit int) []T {
	for len(batch) < limit {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}
