# Developer entry points. CI runs .ci/run; these are the same commands.
#
#   make test    every test, with the race detector (the README's command)
#   make bench   the storage adapters' Go benchmarks (-count=5), then the
#                HTTP load benchmarks of docs/performance.md (test/load/run.sh:
#                PostgreSQL in a fresh schema of $$BENCH_PG_URL, each figure
#                with its raw-SQL or bare-handler reference from the same run,
#                and SQLite), full size
#   make bench-quick  the same load benchmarks at a small size (50k events,
#                3 s rounds; a few minutes): a smoke test of the script, not
#                figures to quote. Any BENCH_* knob set in the environment wins.
#   make faults  TestNeverStale at full size: two replicas behind fault
#                proxies, 20 s of load through each Redis fault (CI runs 3 s)
#   make memory  TestMemory at full size: peak RSS of the real binary with
#                its default settings under issue 13's memory drills (mixed
#                load, ~1 MiB headers, 1 MiB batches), 60 s each, on SQLite
#                and PostgreSQL (CI runs 6 s; MEMORY_LOAD_SECONDS,
#                MEMORY_SEED_EVENTS, MEMORY_USERS win)
#   make run     the service on :8080 with SQLite in ./data
#
# Benchmark outputs land in bench-results/ (git-ignored). If benchstat is
# installed (go install golang.org/x/perf/cmd/benchstat@latest), bench-go
# summarises the -count runs with it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BENCH_COUNT ?= 5
BENCH_PKGS ?= ./adapters/storage/...
BENCH_OUT ?= bench-results

.PHONY: test bench bench-go bench-load bench-quick bench-feed bench-verify faults memory export-memory feed-drill run

test:
	$(GO) test -race ./...

bench: bench-go bench-load

bench-go:
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCH_COUNT) -timeout=30m $(BENCH_PKGS) | tee $(BENCH_OUT)/go-bench.txt
	@if command -v benchstat >/dev/null; then benchstat $(BENCH_OUT)/go-bench.txt; fi

bench-load:
	test/load/run.sh

bench-feed:
	test/load/feed.sh

# activityd verify over 1,000,000 events on PostgreSQL, events/s in the
# log (CI runs 20,000; VERIFY_EVENTS wins)
bench-verify:
	@mkdir -p $(BENCH_OUT)
	VERIFY_EVENTS=$${VERIFY_EVENTS:-1000000} \
	$(GO) test -count=1 -v -run '^TestVerifyThroughput$$' -timeout=60m ./test/e2e/ | tee $(BENCH_OUT)/verify.txt

bench-quick:
	BENCH_SEED_PG=$${BENCH_SEED_PG:-50000} BENCH_USERS=$${BENCH_USERS:-500} \
	BENCH_SEED_SQLITE=$${BENCH_SEED_SQLITE:-20000} BENCH_USERS_SQLITE=$${BENCH_USERS_SQLITE:-200} \
	BENCH_COPY_ROWS=$${BENCH_COPY_ROWS:-50000} BENCH_SECONDS=$${BENCH_SECONDS:-3} BENCH_RUNS=$${BENCH_RUNS:-3} \
	BENCH_ABUSE_SECONDS=$${BENCH_ABUSE_SECONDS:-5} \
	test/load/run.sh

faults:
	FAULT_SECONDS=$${FAULT_SECONDS:-20} $(GO) test -count=1 -v -run 'TestNeverStale' -timeout=20m ./test/e2e/

export-memory:
	@mkdir -p $(BENCH_OUT)
	EXPORT_EVENTS=$${EXPORT_EVENTS:-1000000} \
	$(GO) test -count=1 -v -run '^TestExportMemory$$' -timeout=60m ./test/e2e/ | tee $(BENCH_OUT)/export-memory.txt

memory:
	@mkdir -p $(BENCH_OUT)
	MEMORY_LOAD_SECONDS=$${MEMORY_LOAD_SECONDS:-60} \
	$(GO) test -count=1 -v -run '^TestMemory$$' -timeout=60m ./test/e2e/ | tee $(BENCH_OUT)/memory.txt

# TestFeedGapFree at full length: 60 s of writes, readers and a SIGKILL on
# SQLite and PostgreSQL, with the race detector (CI runs 6 s;
# FEED_DRILL_SECONDS wins)
feed-drill:
	FEED_DRILL_SECONDS=$${FEED_DRILL_SECONDS:-60} \
	$(GO) test -race -count=1 -v -run '^TestFeedGapFree$$' -timeout=30m ./test/e2e/

run:
	$(GO) run ./cmd/activityd
