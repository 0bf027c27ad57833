package checkpoint

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Writer writes each checkpoint as one line of compact JSON (the file
// format) to an io.Writer, for a log collector to keep. It cannot tell
// whether a checkpoint was written before, so writing one again repeats
// the line.
type Writer struct {
	name string
	mu   sync.Mutex // one line at a time
	w    io.Writer
}

var _ ports.CheckpointSink = (*Writer)(nil)

// NewWriter returns a Writer to w, called name in logs and responses.
func NewWriter(name string, w io.Writer) *Writer {
	return &Writer{name: name, w: w}
}

// Stdout returns a Writer to standard output, named "stdout".
func Stdout() *Writer { return NewWriter("stdout", os.Stdout) }

// Name is the name the Writer was made with.
func (w *Writer) Name() string { return w.name }

// Put writes c with its leaves as one line, in a single Write.
func (w *Writer) Put(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := Encode(c, leaves)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("writing checkpoint %d to %s: %w", c.Position, w.name, err)
	}
	return nil
}
