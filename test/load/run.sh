#!/usr/bin/env bash
# activityd's load benchmarks (design.md §7): builds the binary, starts it on
# a free loopback port, drives it with the load tool (go run ./test/load) and
# prints the median of several runs of each scenario, next to a reference
# measured in the same run (pgbench running the adapter's own SQL, a raw
# COPY) and the CPU each party used.
#
#   test/load/run.sh                      # fresh schema bench_<rand> in $BENCH_PG_URL, dropped at the end
#   DATABASE_URL='postgres://...?search_path=x' test/load/run.sh   # an existing database (rows are added to it)
#   DATABASE_URL=sqlite:/tmp/x.db test/load/run.sh                  # SQLite only
#
# PostgreSQL suite: single creates at 32 and 64 clients (and pgbench running
# the same INSERT), batches of 1000 at 4 clients (and a raw COPY), a seed of
# BENCH_SEED_PG events over BENCH_USERS users, then newest-50 lists of one
# user at 1 and 32 clients (and pgbench running the same SELECT, alone and
# with the per-request token lookup), then the same list with the read cache
# on. SQLite suite (sqlite:$tmp/bench.db): the same scenarios with a smaller
# seed, for comparison.
#
# Knobs (environment): BENCH_PG_URL, BENCH_SECONDS (10), BENCH_WARMUP (3s),
# BENCH_RUNS (3), BENCH_CREATE_CLIENTS ("32 64"), BENCH_BATCH_CLIENTS (4),
# BENCH_LIST_CLIENTS ("1 32"), BENCH_SEED_PG (1000000), BENCH_USERS (10000),
# BENCH_SEED_SQLITE (200000), BENCH_USERS_SQLITE (2000), BENCH_SQLITE (1; 0
# skips the SQLite suite), BENCH_PGBENCH (1; 0 skips the references),
# BENCH_CACHED_CLIENTS ("32"; "" skips the cached list), BENCH_CACHE_TTL
# (60s), BENCH_REDIS_URL (unset: the in-process cache), BENCH_RESULTS
# (bench-results/<time>: raw outputs, server logs, summary).
#
# activityd runs with CACHE_TTL=0 (reads uncached) except for the cached
# list at the end of each suite, and COUNT_SCHEDULE=@yearly (no counting
# job during the measurements); the rest of its configuration is the
# default (DB_MAX_OPEN_CONNS=20, synchronous commits).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

: "${BENCH_PG_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
: "${BENCH_SECONDS:=10}"
: "${BENCH_WARMUP:=3s}"
: "${BENCH_RUNS:=3}"
: "${BENCH_CREATE_CLIENTS:=32 64}"
: "${BENCH_BATCH_CLIENTS:=4}"
: "${BENCH_LIST_CLIENTS:=1 32}"
: "${BENCH_SEED_PG:=1000000}"
: "${BENCH_USERS:=10000}"
: "${BENCH_SEED_SQLITE:=200000}"
: "${BENCH_USERS_SQLITE:=2000}"
: "${BENCH_SQLITE:=1}"
: "${BENCH_PGBENCH:=1}"
: "${BENCH_CACHED_CLIENTS=32}"
: "${BENCH_CACHE_TTL:=60s}"
: "${BENCH_REDIS_URL:=}"
: "${BENCH_RESULTS:=$root/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"

for tool in go curl psql awk sed sort; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done
pgbench_bin=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1 || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/activityd-bench.XXXXXX")
mkdir -p "$BENCH_RESULTS"
summary=$BENCH_RESULTS/summary.txt
: >"$summary"
server_pid=""
schema=""        # set when this script created the schema (and must drop it)
admin_url=""     # libpq URL for psql/pgbench (no search_path)
started=$(date +%s)

# shellcheck source=test/load/lib.sh
. "$root/test/load/lib.sh"

stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

cleanup() {
  local rc=$?
  stop_server
  if [ -n "$schema" ]; then
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 \
      && log "dropped schema $schema" || log "could not drop schema $schema: drop it by hand"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 > 0 && a ~ /^[0-9.]+$/) printf "%.2f", a/b; else print "-"}'; }
fmt1() { awk -v x="$1" 'BEGIN {if (x ~ /^[0-9][0-9.e+-]*$/) printf "%.1f", x; else print x}'; }
fmt2() { awk -v x="$1" 'BEGIN {if (x ~ /^[0-9][0-9.e+-]*$/) printf "%.2f", x; else print x}'; }

# CPU accounting: clock ticks of the server, of every postgres process, and
# of the whole machine, between cpu_begin and cpu_end.
clk=$(getconf CLK_TCK)
ncpu=$(getconf _NPROCESSORS_ONLN)
proc_ticks() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}' || echo 0; }
# utime+stime of every live postgres process, plus the children's times the
# postmaster has reaped (cutime+cstime): backends that ended during the
# interval (pgbench's, psql's) still count.
pg_ticks() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '$2 == "(postgres)" {s += $14+$15+$16+$17} END {print s+0}'; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
cpu_begin() {
  c_t0=$(date +%s.%N); c_srv0=$(proc_ticks "${server_pid:-0}"); c_pg0=$(pg_ticks)
  read -r c_busy0 c_all0 < <(machine_ticks)
}
# cpu_end [LOAD_CORES]: "server/postgres/load/machine" in cores
cpu_end() {
  local t1 srv1 pg1 busy1 all1
  t1=$(date +%s.%N); srv1=$(proc_ticks "${server_pid:-0}"); pg1=$(pg_ticks)
  read -r busy1 all1 < <(machine_ticks)
  awk -v t0="$c_t0" -v t1="$t1" -v s0="$c_srv0" -v s1="$srv1" -v p0="$c_pg0" -v p1="$pg1" \
      -v b0="$c_busy0" -v b1="$busy1" -v a0="$c_all0" -v a1="$all1" -v hz="$clk" -v n="$ncpu" -v lc="${1:--}" \
      'BEGIN {w = t1 - t0; if (w <= 0) w = 1
              m = (a1 > a0) ? n * (b1 - b0) / (a1 - a0) : 0
              srv = (s1-s0)/hz/w; pg = (p1-p0)/hz/w; other = m - srv - pg - (lc ~ /^[0-9]/ ? lc : 0)
              printf "srv %.2f pg %.2f load %s other %.2f all %.2f/%d", srv, pg, lc, (other > 0 ? other : 0), m, n}'
}

row_header() {
  printf '%-7s %-28s %4s %10s %10s %8s %8s %6s %11s %6s  %s\n' \
    store scenario c 'req/s' 'events/s' 'p50 ms' 'p99 ms' errors 'ref' ratio 'cpu cores (median run set)'
}
# row STORE SCENARIO C RPS EPS P50 P99 ERRORS REF RATIO CPU
row() {
  printf '%-7s %-28s %4s %10s %10s %8s %8s %6s %11s %6s  %s\n' "$@" | tee -a "$summary" >&2
}


token="adt_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
token_hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)

# start_server NAME DATABASE_URL [CACHE_TTL]: starts activityd and waits for
# /readyz. The read cache is off unless CACHE_TTL is given (in process, or
# in Redis at $BENCH_REDIS_URL); the counting job is scheduled @yearly so
# that no tick falls inside a measurement.
start_server() {
  local name=$1 url=$2 ttl=${3:-0} port
  for attempt in 1 2 3; do
    port=$(free_port)
    base="http://127.0.0.1:$port"
    env -u REDIS_URL ${BENCH_REDIS_URL:+REDIS_URL="$BENCH_REDIS_URL"} \
      DATABASE_URL="$url" HTTP_ADDR="127.0.0.1:$port" BOOTSTRAP_ADMIN_TOKEN="$token" \
      LOG_LEVEL=warn LOG_FORMAT=text AUTH_MODE=token CACHE_TTL="$ttl" COUNT_SCHEDULE=@yearly \
      "$tmp/activityd" serve >>"$BENCH_RESULTS/server-$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 120); do
      if curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1; then
        log "$name: activityd pid $server_pid on $base"
        return 0
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.25
    done
    log "$name: activityd did not become ready (attempt $attempt); log: $BENCH_RESULTS/server-$name.log"
    stop_server
  done
  return 1
}

# peak resident memory of the server so far
server_hwm() { awk '/^VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$server_pid/status" 2>/dev/null || echo "?"; }

# load STORE SCENARIO C [ARGS...]: runs the load tool BENCH_RUNS times
# (after a warm-up) and leaves the median line in $last.
load() {
  local store=$1 scenario=$2 c=$3
  shift 3
  local out="$BENCH_RESULTS/load-$store-$scenario-c$c.jsonl" rc=0
  log "$store: $scenario, $c clients, $BENCH_RUNS x ${BENCH_SECONDS}s"
  cpu_begin
  "$tmp/load" -url "$base" -token "$token" -scenario "${scenario%-*}" -c "$c" -d "${BENCH_SECONDS}s" \
    -warmup "$BENCH_WARMUP" -runs "$BENCH_RUNS" -json -label "$store" "$@" >"$out" || rc=$?
  last=$(tail -n1 "$out")
  last_cpu=$(cpu_end "$(fmt2 "$(jget load_cores "$last")")")
  [ "$rc" -eq 0 ] || log "$store: $scenario c=$c: the load tool exited $rc; see $out"
  grep -q '"median_of"' <<<"$last" || [ "$BENCH_RUNS" -eq 1 ] || log "no median line in $out"
}

# pgb NAME SCRIPT C: BENCH_RUNS pgbench runs (after a 2 s warm-up); sets
# ref_tps, ref_p50, ref_p99 (medians) and ref_cpu.
pgb() {
  local name=$1 script=$2 c=$3 j tps=() p50=() p99=() dir
  ref_tps="-" ref_p50="-" ref_p99="-" ref_cpu="-" ref_row=()
  if [ "$BENCH_PGBENCH" != 1 ] || [ -z "$pgbench_bin" ] || [ -z "$admin_url" ]; then return 0; fi
  j=$((c < ncpu ? c : ncpu))
  log "pgbench $name: $c clients, $BENCH_RUNS x ${BENCH_SECONDS}s"
  local common=(-n -M prepared -f "$script" -c "$c" -j "$j" -D "users=$users" -D lim=51)
  if ! PGOPTIONS="-c search_path=$pg_schema" "$pgbench_bin" "${common[@]}" -T 2 "$admin_url" \
      >"$BENCH_RESULTS/pgbench-$name-warmup.txt" 2>&1; then
    log "pgbench $name failed: $(tail -n2 "$BENCH_RESULTS/pgbench-$name-warmup.txt" | tr '\n' ' ')"
    return 0
  fi
  cpu_begin
  for i in $(seq 1 "$BENCH_RUNS"); do
    dir="$tmp/pgb-$name-$i"; mkdir -p "$dir"
    (cd "$dir" && PGOPTIONS="-c search_path=$pg_schema" "$pgbench_bin" "${common[@]}" -T "$BENCH_SECONDS" \
        -l --log-prefix=tx "$admin_url") >"$BENCH_RESULTS/pgbench-$name-$i.txt" 2>&1 || {
      log "pgbench $name run $i failed (see $BENCH_RESULTS/pgbench-$name-$i.txt)"; continue; }
    tps+=("$(awk '/^tps = / {print $3; exit}' "$BENCH_RESULTS/pgbench-$name-$i.txt")")
    # per-transaction log: client tx latency_us script epoch us
    cat "$dir"/tx.* | awk '{print $3}' | sort -n >"$dir/lat"
    p50+=("$(awk -v p=50 '{a[NR]=$1} END {r=int(NR*p/100); if (r < NR*p/100) r++; if (r < 1) r = 1; printf "%.3f", a[r]/1000}' "$dir/lat")")
    p99+=("$(awk -v p=99 '{a[NR]=$1} END {r=int(NR*p/100); if (r < NR*p/100) r++; if (r < 1) r = 1; printf "%.3f", a[r]/1000}' "$dir/lat")")
    rm -rf "$dir"
  done
  ref_cpu=$(cpu_end)
  [ "${#tps[@]}" -gt 0 ] || return 0
  ref_tps=$(median "${tps[@]}") ref_p50=$(median "${p50[@]}") ref_p99=$(median "${p99[@]}")
  ref_row=(pg "  ref: pgbench $name" "$c" "$(fmt1 "$ref_tps")" - "$(fmt2 "$ref_p50")" "$(fmt2 "$ref_p99")" - - - "$ref_cpu")
}

# report STORE LABEL C REF_RPS: one summary row from $last (rate: events/s
# for create and batch, req/s otherwise; the ratio is ours / reference).
report() {
  local store=$1 label=$2 c=$3 ref=${4:--} rps eps mine
  rps=$(jget rps "$last") eps=$(jget events_per_s "$last")
  mine=$rps; [[ $label == batch* || $label == seed* ]] && mine=$eps
  [[ $label == create* ]] && mine=$eps
  local eps_col=-; [[ $label == list* ]] || eps_col=$(fmt1 "$eps")
  row "$store" "$label" "$c" "$(fmt1 "$rps")" "$eps_col" "$(fmt2 "$(jget p50_ms "$last")")" \
    "$(fmt2 "$(jget p99_ms "$last")")" "$(jget errors "$last")" "$(fmt1 "$ref")" "$(ratio "$mine" "$ref")" "$last_cpu"
}

# copy_ref N: a raw COPY of N events into the indexed events table, in a
# transaction rolled back afterwards; sets copy_eps (median events/s).
copy_ref() {
  local n=$1 csv="$tmp/copy.csv" t0 t1 eps=()
  copy_eps="-"
  [ -n "$admin_url" ] || return 0
  log "pg: raw COPY reference, $BENCH_RUNS x $n rows"
  # \copy takes one line
  PGOPTIONS="-c search_path=$pg_schema" psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "\copy (SELECT gen_random_uuid(), 1 + g % $users, 'upload_file', 'PENDING', now() - (g % 2592000) * interval '1 second', now() + g * interval '1 microsecond', now() + g * interval '1 microsecond', '{\"device\":\"bench\",\"ip\":\"10.0.0.1\",\"seq\":' || g || '}' FROM generate_series(1, $n) g) TO '$csv' WITH (FORMAT csv)" || return 0
  cpu_begin
  for _ in $(seq 1 "$BENCH_RUNS"); do
    t0=$(date +%s.%N)
    printf 'BEGIN;\n\\copy events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata) FROM %s WITH (FORMAT csv)\nROLLBACK;\n' "'$csv'" \
      | PGOPTIONS="-c search_path=$pg_schema" psql "$admin_url" -qX -v ON_ERROR_STOP=1 >/dev/null || return 0
    t1=$(date +%s.%N)
    eps+=("$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n/(b-a)}')")
  done
  copy_eps=$(median "${eps[@]}")
  row pg "  ref: COPY (1 stream)" 1 - "$(fmt1 "$copy_eps")" - - - - - "$(cpu_end)"
}

# ------------------------------------------------------------------ suites

# suite STORE URL SEED USERS: every scenario against one store.
suite() {
  local store=$1 url=$2 seed_n=$3 users=$4 c mine mine_cpu ref list_row auth_row
  start_server "$store" "$url"
  for c in $BENCH_CREATE_CLIENTS; do
    load "$store" create "$c" -users "$users"
    mine=$last mine_cpu=$last_cpu ref_tps=- ref_row=()
    if [ "$store" = pg ]; then pgb "create-c$c" "$root/test/load/pgbench/create.sql" "$c"; fi
    last=$mine last_cpu=$mine_cpu
    report "$store" "create (1 event)" "$c" "$ref_tps"
    [ "${#ref_row[@]}" -eq 0 ] || row "${ref_row[@]}"
  done
  for c in $BENCH_BATCH_CLIENTS; do
    load "$store" batch "$c" -users "$users" -batch 1000
    report "$store" "batch (1000/req)" "$c"
  done
  if [ "$store" = pg ]; then copy_ref 200000; fi

  log "$store: seeding $seed_n events over $users users"
  cpu_begin
  "$tmp/load" -url "$base" -token "$token" -seed "$seed_n" -users "$users" -c 4 -batch 1000 -json \
    -label "$store" >"$BENCH_RESULTS/load-$store-seed.jsonl" || log "$store: seed reported errors"
  last=$(tail -n1 "$BENCH_RESULTS/load-$store-seed.jsonl")
  last_cpu=$(cpu_end "$(fmt2 "$(jget load_cores "$last")")")
  report "$store" "seed (1000/req)" 4
  if [ "$store" = pg ]; then
    log "pg: VACUUM ANALYZE events"
    PGOPTIONS="-c search_path=$pg_schema" psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "VACUUM (ANALYZE) events" >/dev/null
    total=$(PGOPTIONS="-c search_path=$pg_schema" psql "$admin_url" -qXAt -c "SELECT count(*) FROM events")
    log "pg: events table holds $total events"
    echo "pg: $total events in the table during the list runs" >>"$summary"
  fi
  for c in $BENCH_LIST_CLIENTS; do
    load "$store" list "$c" -users "$users" -limit 50
    mine=$last mine_cpu=$last_cpu ref=- ref_row=() auth_row=()
    if [ "$store" = pg ]; then
      pgb "list-c$c" "$tmp/list.sql" "$c"
      ref=$ref_tps list_row=("${ref_row[@]}")
      pgb "list+auth-c$c" "$tmp/list_auth.sql" "$c"
      auth_row=("${ref_row[@]}") ref_row=("${list_row[@]}")
    fi
    last=$mine last_cpu=$mine_cpu
    report "$store" "list newest 50" "$c" "$ref"
    [ "$(jget x_cache "$last")" = 0 ] || [ "$(jget cache_hit_ratio "$last")" = 0 ] \
      || log "$store: list c=$c: cache hits during the uncached list: $(jget cache_hit_ratio "$last")"
    [ "${#ref_row[@]}" -eq 0 ] || row "${ref_row[@]}"
    [ "${#auth_row[@]}" -eq 0 ] || row "${auth_row[@]}"
  done
  echo "$store: activityd peak RSS $(server_hwm)" | tee -a "$summary" >&2
  stop_server
  if [ -n "$BENCH_CACHED_CLIENTS" ]; then
    start_server "$store-cached" "$url" "$BENCH_CACHE_TTL"
    for c in $BENCH_CACHED_CLIENTS; do
      load "$store" list-cached "$c" -users "$users" -limit 50
      report "$store" "list 50 cached ($(awk -v h="$(jget cache_hit_ratio "$last")" 'BEGIN {printf "%.0f", 100*h}')% hit)" "$c"
    done
    stop_server
  fi
}

log "building activityd and the load tool into $tmp"
go build -o "$tmp/activityd" ./cmd/activityd
go build -o "$tmp/load" ./test/load

primary=${DATABASE_URL:-}
if [ -z "$primary" ]; then
  admin_url=$BENCH_PG_URL
  schema="bench_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
  pg_schema=$schema
  sep='?'; [[ $admin_url == *\?* ]] && sep='&'
  primary="$admin_url${sep}search_path=$schema"
  log "created schema $schema"
elif [[ $primary == postgres://* || $primary == postgresql://* ]]; then
  # libpq does not know search_path / statement_cache as URL parameters:
  # pass the schema through PGOPTIONS instead.
  pg_schema=$(sed -nE 's/.*[?&]search_path=([^&]*).*/\1/p' <<<"$primary"); pg_schema=${pg_schema:-public}
  admin_url=$(sed -E 's/([?&])(search_path|statement_cache)=[^&]*&?/\1/g; s/[?&]$//' <<<"$primary")
fi

# what the machine was doing before we started (it is shared)
cpu_begin; sleep 3; idle_cpu=$(cpu_end | sed -E 's/.*all ([0-9.]+).*/\1/')
{
  echo "activityd load benchmarks, $(date -u +%FT%TZ), $(nproc) cores, $(uname -r); $idle_cpu cores busy with other work just before the start"
  echo "runs: median of $BENCH_RUNS x ${BENCH_SECONDS}s after a $BENCH_WARMUP warm-up; load tool and server on the same cores"
  echo "cpu columns: cores used during the runs by activityd (srv), all postgres processes (pg), the load tool (load, median run), anything else (other: pgbench, psql, other users of this shared machine), and the whole machine (all)"
  echo "ratio: ours / ref (create: events/s vs pgbench tps of the same INSERT; list: req/s vs pgbench tps of the same SELECT)"
} >>"$summary"
row_header | tee -a "$summary" >&2

if [[ $primary == sqlite:* ]]; then
  suite sqlite "$primary" "$BENCH_SEED_SQLITE" "$BENCH_USERS_SQLITE"
else
  users=$BENCH_USERS
  # pgbench scripts needing this run's values
  cp "$root/test/load/pgbench/list.sql" "$tmp/list.sql"
  {
    echo "-- the token lookup every /v1 request makes (adapters/storage/postgres/tokens.go), then the list"
    echo "SELECT id, name, user_id, scopes, hash, created_at, expires_at, revoked_at FROM api_tokens WHERE hash = '\\x$token_hash'::bytea;"
    grep -v '^--' "$root/test/load/pgbench/list.sql"
  } >"$tmp/list_auth.sql"
  cp "$tmp/list_auth.sql" "$BENCH_RESULTS/"
  [ -n "$pgbench_bin" ] || log "pgbench not found: no references (apt-get install postgresql-client)"
  suite pg "$primary" "$BENCH_SEED_PG" "$BENCH_USERS"
  if [ -n "$schema" ]; then # done with it: no autovacuum of it during the SQLite suite
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 && log "dropped schema $schema" && schema=""
  fi
  if [ "$BENCH_SQLITE" = 1 ]; then
    users=$BENCH_USERS_SQLITE
    suite sqlite "sqlite:$tmp/bench.db" "$BENCH_SEED_SQLITE" "$BENCH_USERS_SQLITE"
  fi
fi

echo "total wall time $(( $(date +%s) - started ))s; raw outputs in $BENCH_RESULTS" | tee -a "$summary" >&2
echo
cat "$summary"
