package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves net/http/pprof at /debug/pprof/: the index, the
// named profiles under it (heap, goroutine, allocs, block, mutex,
// threadcreate), cmdline, profile (CPU), symbol and trace.
//
// It is a mux of its own. Importing net/http/pprof also registers these
// handlers on http.DefaultServeMux, which activityd never serves: the API
// has its own router and every listener its own handler.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves the profiler on PPROF_ADDR, in the background, and
// returns the function that stops it. Without PPROF_ADDR it serves
// nothing. loadConfig has refused a PPROF_ADDR that is not loopback
// unless PPROF_ALLOW_REMOTE=true; such an address is logged as a warning.
func servePprof(cfg config, log *slog.Logger) (stop func(), err error) {
	if cfg.PprofAddr == "" {
		return func() {}, nil
	}
	if !isLoopback(cfg.PprofAddr) {
		if !cfg.PprofAllowRemote { // unreachable through loadConfig; kept as a guard
			return nil, fmt.Errorf("PPROF_ADDR=%q is not a loopback address and PPROF_ALLOW_REMOTE is not true", cfg.PprofAddr)
		}
		log.Warn("PPROF_ALLOW_REMOTE=true: the profiler is reachable from other machines, without authentication; "+
			"it shows the command line and memory contents, and profiles and traces cost CPU",
			"addr", cfg.PprofAddr)
	}
	return sideListener{
		variable: "PPROF_ADDR",
		addr:     cfg.PprofAddr,
		handler:  pprofHandler(),
		// None: a CPU profile or trace lasts as long as its seconds=
		// asks, and pprof refuses one at least as long as a write timeout.
		writeTimeout: 0,
		started:      "serving pprof",
		attrs:        []any{"path", "/debug/pprof/"},
	}.serve(log)
}
