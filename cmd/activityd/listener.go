package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// sideListener is an HTTP listener of a process's own, for operators,
// beside its work (and beside the API port in serve): METRICS_ADDR's
// /metrics, PPROF_ADDR's profiler.
type sideListener struct {
	variable string // the variable that names the address, for errors and logs
	addr     string
	handler  http.Handler
	// writeTimeout bounds writing one response; 0: no bound.
	writeTimeout time.Duration
	// started is the message of the log line that says it listens, with
	// the address it bound (the port chosen for ":0") and attrs.
	started string
	attrs   []any
}

// serve listens on l.addr and serves l.handler in the background, and
// returns the function that stops it: requests in flight get 5 s to
// finish, then their connections are closed. It is the process's own
// shutdown that calls it.
func (l sideListener) serve(log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", l.variable, l.addr, err)
	}
	srv := &http.Server{
		Handler:           l.handler,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      l.writeTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(l.variable+" listener failed", "addr", l.addr, "err", err)
		}
	}()
	log.Info(l.started, append([]any{"addr", ln.Addr().String()}, l.attrs...)...)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}
