#!/usr/bin/env bash
# Issue 17's feed cost: ingest on PostgreSQL (single creates at 64 clients,
# batches of 1000 at 4) without, then with, 10 Server-Sent Events readers
# of the change feed and 3 webhook subscriptions delivering to the load
# tool, A/B/A/B in one run on one seeded schema; with BENCH_BASELINE (an
# activityd binary built before the feed) the same scenarios on it first,
# for the feed's cost on the write path itself.
#
#   test/load/feed.sh                               # make bench-feed
#   BENCH_BASELINE=/tmp/activityd-before test/load/feed.sh
#
# Knobs: BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test?sslmode=disable),
# BENCH_SEED (200000), BENCH_USERS (2000), BENCH_SECONDS (8), BENCH_RUNS (3),
# BENCH_RESULTS (bench-results/feed). Prints medians, one line per case.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/test/load/lib.sh"
: "${BENCH_PG_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
: "${BENCH_SEED:=200000}" "${BENCH_USERS:=2000}" "${BENCH_SECONDS:=8}" "${BENCH_RUNS:=3}"
: "${BENCH_RESULTS:=$root/bench-results/feed}"
mkdir -p "$BENCH_RESULTS"
tmp=$(mktemp -d)
token=feed-bench-admin-token-0123456789abcdef
server_pid=""
schema="feed_bench_$$"
cleanup() {
  [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }
  for s in "${schema}_new" "${schema}_old"; do
    psql "$BENCH_PG_URL" -qX -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$root"
go build -o "$tmp/activityd" ./cmd/activityd
go build -o "$tmp/load" ./test/load

# start BINARY SCHEMA: activityd on the schema, loopback webhooks allowed.
start() {
  local port
  port=$(free_port)
  base="http://127.0.0.1:$port"
  sep='?'; [[ $BENCH_PG_URL == *\?* ]] && sep='&'
  DATABASE_URL="${BENCH_PG_URL}${sep}search_path=$2" HTTP_ADDR="127.0.0.1:$port" \
    BOOTSTRAP_ADMIN_TOKEN="$token" AUTH_MODE=token LOG_LEVEL=warn CACHE_TTL=0 COUNT_SCHEDULE=@yearly \
    WEBHOOK_ALLOW=127.0.0.1/32 WEBHOOK_ALLOW_HTTP=true \
    "$1" serve >>"$BENCH_RESULTS/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "activityd did not start; see $BENCH_RESULTS/server.log"; return 1
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# run NAME SCENARIO C [ARGS...]: the median line of BENCH_RUNS runs.
run() {
  local name=$1 scenario=$2 c=$3 line
  shift 3
  "$tmp/load" -url "$base" -token "$token" -scenario "$scenario" -c "$c" -d "${BENCH_SECONDS}s" \
    -users "$BENCH_USERS" -runs "$BENCH_RUNS" -json -label "$name" "$@" >"$BENCH_RESULTS/$name.jsonl" || true
  line=$(tail -n1 "$BENCH_RESULTS/$name.jsonl")
  printf '%-34s %10s ev/s  p99 %7s ms  followed %9s  delivered %9s\n' "$name" \
    "$(jget events_per_s "$line" | cut -d. -f1)" "$(jget p99_ms "$line")" \
    "$(grep -o '"feed_followed":[0-9]*' <<<"$line" | cut -d: -f2 || echo 0)" \
    "$(grep -o '"webhook_delivered":[0-9]*' <<<"$line" | cut -d: -f2 || echo 0)"
}

# seed BINARY SCHEMA: a fresh schema with BENCH_SEED events.
seed() {
  psql "$BENCH_PG_URL" -qX -c "CREATE SCHEMA $2" >/dev/null
  start "$1" "$2"
  log "seeding $BENCH_SEED events over $BENCH_USERS users into $2"
  "$tmp/load" -url "$base" -token "$token" -seed "$BENCH_SEED" -users "$BENCH_USERS" -c 4 -batch 1000 -json >/dev/null
  stop
}
seed "$tmp/activityd" "${schema}_new"
[ -z "${BENCH_BASELINE:-}" ] || seed "$BENCH_BASELINE" "${schema}_old"
for round in 1 2; do
  if [ -n "${BENCH_BASELINE:-}" ]; then
    start "$BENCH_BASELINE" "${schema}_old"
    run "before-feed create c64 #$round" create 64
    run "before-feed batch c4 #$round" batch 4 -batch 1000
    stop
  fi
  start "$tmp/activityd" "${schema}_new"
  run "feed, no readers create c64 #$round" create 64
  run "feed, 10 SSE + 3 hooks create c64 #$round" create 64 -followers 10 -webhooks 3
  run "feed, no readers batch c4 #$round" batch 4 -batch 1000
  run "feed, 10 SSE + 3 hooks batch c4 #$round" batch 4 -batch 1000 -followers 10 -webhooks 3
  stop
done
