#!/usr/bin/env bash
# What telemetry costs: requests/s of activityd in four telemetry modes,
# in the same run:
#   off      OTEL_SDK_DISABLED=true: no spans, no activityd_* metrics
#   local    the default: metrics, and server spans for the log lines'
#            trace ids, exported nowhere (so no SQL/Redis spans)
#   otlp     every span (HTTP, SQL, Redis) exported over OTLP/HTTP to a
#            discarding receiver (test/load/otlpsink), and the metrics
#   otlp10   the same with 10% of traces sampled
#            (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.1)
# The order of the modes rotates round by round, so that drift on a shared
# machine falls on all of them; each figure is the median of the rounds.
#
#   test/load/telemetry.sh                         # PostgreSQL, fresh schema in $BENCH_PG_URL
#   DATABASE_URL=sqlite:/tmp/t.db test/load/telemetry.sh
#
# Scenarios (the load tool, -c clients for BENCH_SECONDS each):
#   create  POST /v1/events, one event each                   (SQL: one INSERT)
#   list    GET newest 50 of a user, read cache off           (SQL: one SELECT)
#   cached  the same list, served from the in-process cache   (no SQL)
# Knobs: BENCH_PG_URL, BENCH_SECONDS (10), BENCH_ROUNDS (5), BENCH_CLIENTS (32),
# BENCH_RESULTS (bench-results/telemetry-<time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
: "${BENCH_PG_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
: "${BENCH_SECONDS:=10}"
: "${BENCH_ROUNDS:=5}"
: "${BENCH_CLIENTS:=32}"
: "${BENCH_RESULTS:=$root/bench-results/telemetry-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$BENCH_RESULTS"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/activityd-telemetry.XXXXXX")
server_pid="" sink_pid="" schema=""
# shellcheck source=test/load/lib.sh
. "$root/test/load/lib.sh"

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  stop_pid "$server_pid"; stop_pid "$sink_pid"
  [ -z "$schema" ] || psql "$BENCH_PG_URL" -qX -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


go build -o "$tmp/activityd" ./cmd/activityd
go build -o "$tmp/load" ./test/load
go build -o "$tmp/otlpsink" ./test/load/otlpsink

if [ -n "${DATABASE_URL:-}" ]; then
  db=$DATABASE_URL
else
  schema="tel_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  psql "$BENCH_PG_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
  sep='?'; [[ $BENCH_PG_URL == *\?* ]] && sep='&'
  db="$BENCH_PG_URL${sep}search_path=$schema"
fi
sink_port=$(free_port)
"$tmp/otlpsink" -addr "127.0.0.1:$sink_port" >"$BENCH_RESULTS/otlpsink.txt" 2>&1 &
sink_pid=$!
token="adt_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

modes=(off local otlp otlp10)

# start MODE CACHE_TTL: activityd in one of the telemetry modes, on a free
# port (tried again on another if the server does not come up: a port
# found free can be taken before the server binds it).
start() {
  local mode=$1 ttl=$2 port attempt
  local telemetry
  case $mode in
    off) telemetry=(OTEL_SDK_DISABLED=true) ;;
    local) telemetry=(OTEL_SDK_DISABLED=false) ;;
    otlp) telemetry=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port") ;;
    otlp10) telemetry=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
      OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
  esac
  for attempt in 1 2 3; do
    port=$(free_port)
    base="http://127.0.0.1:$port"
    env -u REDIS_URL "${telemetry[@]}" DATABASE_URL="$db" HTTP_ADDR="127.0.0.1:$port" BOOTSTRAP_ADMIN_TOKEN="$token" \
      LOG_LEVEL=warn LOG_FORMAT=json CACHE_TTL="$ttl" COUNT_SCHEDULE=@yearly \
      "$tmp/activityd" serve >>"$BENCH_RESULTS/server-$mode.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 120); do
      # Ready, and it is our server that answers.
      if curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1 && kill -0 "$server_pid" 2>/dev/null; then
        return 0
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.25
    done
    log "activityd ($mode) did not come up on $base (attempt $attempt); see $BENCH_RESULTS/server-$mode.log"
    stop_pid "$server_pid"; server_pid=""
  done
  return 1
}

# measure MODE SCENARIO: one run; prints requests/s.
measure() {
  local mode=$1 scenario=$2 ttl=0 kind=$2 line
  [ "$scenario" = cached ] && { ttl=60s; kind=list; }
  start "$mode" "$ttl"
  line=$("$tmp/load" -url "$base" -token "$token" -scenario "$kind" -c "$BENCH_CLIENTS" -users 50 \
    -d "${BENCH_SECONDS}s" -warmup 2s -json -label "$mode" | tail -n1)
  echo "$line" >>"$BENCH_RESULTS/load-$mode-$scenario.jsonl"
  stop_pid "$server_pid"; server_pid=""
  # A run with errors measures nothing: it is reported and left out.
  if [ "$(jget errors "$line")" != 0 ]; then
    log "$mode $scenario: the run had errors, left out: $line"
    return 0
  fi
  jget rps "$line"
}

declare -A rps
log "seeding 20000 events over 50 users"
start off 0
"$tmp/load" -url "$base" -token "$token" -seed 20000 -users 50 -c 4 >/dev/null
stop_pid "$server_pid"; server_pid=""

for round in $(seq 1 "$BENCH_ROUNDS"); do
  k=$(( (round - 1) % ${#modes[@]} ))
  order="${modes[*]:k} ${modes[*]:0:k}"
  for scenario in create list cached; do
    for mode in $order; do
      r=$(measure "$mode" "$scenario")
      [ -n "$r" ] && rps[$mode-$scenario]="${rps[$mode-$scenario]:-} $r"
      log "round $round $scenario $mode: $r req/s"
    done
  done
done

{
  echo "req/s, median of $BENCH_ROUNDS rounds of ${BENCH_SECONDS}s, $BENCH_CLIENTS clients; ${db%%\?*}; (ratio to off)"
  printf '%-8s' scenario; printf ' %16s' "${modes[@]}"; echo
  for scenario in create list cached; do
    # shellcheck disable=SC2086
    off=$(median ${rps[off-$scenario]})
    printf '%-8s' "$scenario"
    for mode in "${modes[@]}"; do
      # shellcheck disable=SC2086
      awk -v a="$(median ${rps[$mode-$scenario]})" -v o="$off" 'BEGIN {printf " %8.0f (%5.3f)", a, a/o}'
    done
    echo
  done
} | tee "$BENCH_RESULTS/summary.txt"
stop_pid "$sink_pid"; sink_pid=""
cat "$BENCH_RESULTS/otlpsink.txt" | tail -n1
