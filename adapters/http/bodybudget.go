package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultBodyMemoryBudget is Config.BodyMemoryBudget's default: sixteen
// bodies of the default MAX_BODY_BYTES at once, whatever the number of
// clients sending them, within the 150 MB of docs/performance.md (32
// concurrent 1 MiB batches took the process to 276 MB in issue 13).
const DefaultBodyMemoryBudget int64 = 16 << 20

// DefaultBodyBudgetWait is Config.BodyBudgetWait's default.
const DefaultBodyBudgetWait = time.Second

// bodyBudget bounds the request body bytes held at once, server-wide, by
// the requests that read one. A request reserves its Content-Length (the
// body limit when it is not known: chunked) before reading a byte, waits
// a little for it when the budget is taken, and is refused 503 overloaded
// when it cannot get it. The reservation lasts until the request is
// answered, not only while the body is decoded: the decoded events are
// about as large as the body and live until they are stored (released
// after decoding, 32 concurrent 1 MiB batches still peaked at 169 MB;
// held, at 139 MB). x/sync's weighted semaphore serves waiters in order,
// so a large body is not passed over by small ones.
type bodyBudget struct {
	sem  *semaphore.Weighted
	size int64
	wait time.Duration
}

// newBodyBudget is a budget of size bytes (DefaultBodyMemoryBudget when
// 0), never less than maxBody so that the largest body allowed fits, and
// a wait (DefaultBodyBudgetWait when 0).
func newBodyBudget(size, maxBody int64, wait time.Duration) bodyBudget {
	if size <= 0 {
		size = DefaultBodyMemoryBudget
	}
	size = max(size, maxBody)
	if wait <= 0 {
		wait = DefaultBodyBudgetWait
	}
	return bodyBudget{sem: semaphore.NewWeighted(size), size: size, wait: wait}
}

// reserve takes n bytes of the budget, waiting at most b.wait, and
// returns the function that gives them back. A client that goes away
// while it waits gets its context's error; one that waits in vain, a 503
// overloaded.
func (b bodyBudget) reserve(ctx context.Context, n int64) (release func(), err error) {
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("wait for body memory: %w", ctx.Err())
		case err != nil:
			return nil, &httpError{status: http.StatusServiceUnavailable, slug: slugOverloaded,
				detail: fmt.Sprintf("the server holds its budget of %d bytes of request bodies being decoded; retry later", b.size)}
		}
	}
	return func() { b.sem.Release(n) }, nil
}

// readAll is io.ReadAll into one buffer of the announced size, when known
// (size ≥ 0), instead of io.ReadAll's doublings, whose garbage is as large
// again as the body.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: room to see the end without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
