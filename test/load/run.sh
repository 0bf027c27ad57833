#!/usr/bin/env bash
# activityd's load benchmarks (docs/performance.md): builds the binary, starts it on
# a free loopback port, drives it with the load tool (go run ./test/load) and
# prints, for each target, the median of BENCH_RUNS rounds next to a
# reference measured in the same run, the ratio, the target, p50/p99, the
# server's peak RSS during that load and the CPU each party used.
#
#   test/load/run.sh                      # fresh schema bench_<rand> in $BENCH_PG_URL, dropped at the end
#   make bench-quick                      # the same at a small size (a few minutes)
#   DATABASE_URL='postgres://...?search_path=x' test/load/run.sh   # an existing database (rows are added to it)
#   DATABASE_URL=sqlite:/tmp/x.db test/load/run.sh                  # SQLite only
#
# The references do not use the adapter's SQL or tables: they run on a
# fixed plain table, ref_events (test/load/pgbench/ref_events.sql), that
# run.sh creates in the benchmark's schema and fills, after activityd is
# seeded, with as many rows over the same users in the same shape as the
# seed. Only activityd's HTTP API touches activityd's own tables.
#
# PostgreSQL suite, in this order:
#   seed      BENCH_SEED_PG events over BENCH_USERS users through
#             POST /v1/events/batch; then ref_events gets the same number of
#             rows; VACUUM ANALYZE of every table of the schema
#   list      GET /v1/users/{id}/events?limit=50, read cache off, at
#             BENCH_LIST_CLIENTS   vs pgbench's newest-50 SELECT on ref_events
#             (-M prepared) at BENCH_LIST_REF_CLIENTS
#   create    POST /v1/events at each of BENCH_CREATE_CLIENTS   vs pgbench doing
#             one plain INSERT per transaction into ref_events, same clients
#   batch     POST /v1/events/batch of 1000 at BENCH_BATCH_CLIENTS   vs a COPY
#             of BENCH_COPY_ROWS rows into ref_events (rolled back)
#   cached    the list with CACHE_TTL=BENCH_CACHE_TTL in process   vs a bare
#             net/http handler writing the same bytes from a map
#             (test/load/refserver, fed from this activityd)
#   redis     the list cached in Redis at BENCH_REDIS_URL   vs the bare handler
#             doing one go-redis GET per request for the same bytes
# SQLite suite (sqlite:$tmp/bench.db): the same activityd scenarios with a
# seed of BENCH_SEED_SQLITE over BENCH_USERS_SQLITE, no references.
# Peak RSS is the server's VmHWM, reset before each load (clear_refs).
# Then, on each store, a table of its own: peak RSS under issue 13's memory
# drills, activityd with its default settings (in-process cache on), one
# run of BENCH_ABUSE_SECONDS each (test/e2e's TestMemory runs the same):
#   mixed     64 clients, 80% GET list 50 of a random user, 20% creates
#   headers   128 clients without credentials, each request with a ~1 MiB
#             header (431 expected: headers are limited to 64 KiB)
#   batches   32 clients, POST /v1/events/batch of 1000 events padded to
#             just under 1 MiB (MAX_BODY_BYTES); a 503 is load shed
#
# Knobs (environment): BENCH_PG_URL, BENCH_SECONDS (10), BENCH_WARMUP (3s),
# BENCH_RUNS (3), BENCH_CREATE_CLIENTS ("32 64"), BENCH_BATCH_CLIENTS (4),
# BENCH_LIST_CLIENTS ("64"), BENCH_LIST_REF_CLIENTS (8), BENCH_SEED_PG
# (1000000), BENCH_USERS (10000), BENCH_SEED_SQLITE (200000),
# BENCH_USERS_SQLITE (2000), BENCH_SQLITE (1; 0 skips the SQLite suite),
# BENCH_PGBENCH (1; 0 skips the SQL references), BENCH_COPY_ROWS (200000),
# BENCH_EVIDENCE (1; 0 skips the create and batch rows without and again
# with the hash chains, issue 18), BENCH_CACHED_CLIENTS ("64"; "" skips the cached lists), BENCH_CACHED_USERS
# (1000: the cached lists read the pages of users 1..N, a working set of
# about 15 MB that fits the default in-process cache, as a cache is sized
# to hold what is read again; all 10,000 users' pages are 144 MB),
# BENCH_CACHE_TTL
# (60s), BENCH_REDIS_URL (redis://127.0.0.1:6379/15; "" skips the Redis rows;
# every key goes under a prefix of this run, deleted at the end),
# BENCH_RESULTS (bench-results/<time>: raw outputs, server logs, summary),
# BENCH_ACTIVITYD (a prebuilt activityd binary to measure instead of this
# tree's, e.g. an older commit's for a before/after table), BENCH_ABUSE (1;
# 0 skips the memory drills), BENCH_ABUSE_SECONDS (60).
#
# activityd runs with CACHE_TTL=0 (reads uncached) except for the cached
# lists, and COUNT_SCHEDULE=@yearly (no counting job during the
# measurements); the rest of its configuration is the default
# (DB_MAX_OPEN_CONNS=20, synchronous commits).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# The command as given, for the summary: the knobs set in the environment
# (passwords in URLs masked), then the script.
mask() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#g' <<<"$1"; }
invocation=""
while IFS= read -r v; do
  invocation+="$v=$(printf '%q' "$(mask "${!v}")") "
done < <(compgen -e | grep -E '^(BENCH_[A-Z_]+|DATABASE_URL)$' | sort)
invocation+="test/load/run.sh"

: "${BENCH_PG_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
: "${BENCH_SECONDS:=10}"
: "${BENCH_WARMUP:=3s}"
: "${BENCH_RUNS:=3}"
: "${BENCH_CREATE_CLIENTS:=32 64}"
: "${BENCH_BATCH_CLIENTS:=4}"
: "${BENCH_LIST_CLIENTS:=64}"
: "${BENCH_LIST_REF_CLIENTS:=8}"
: "${BENCH_SEED_PG:=1000000}"
: "${BENCH_USERS:=10000}"
: "${BENCH_SEED_SQLITE:=200000}"
: "${BENCH_USERS_SQLITE:=2000}"
: "${BENCH_SQLITE:=1}"
: "${BENCH_PGBENCH:=1}"
: "${BENCH_COPY_ROWS:=200000}"
: "${BENCH_CACHED_CLIENTS=64}"
: "${BENCH_CACHED_USERS:=1000}"
: "${BENCH_CACHE_TTL:=60s}"
: "${BENCH_REDIS_URL=redis://127.0.0.1:6379/15}"
: "${BENCH_ABUSE:=1}"
: "${BENCH_EVIDENCE:=1}"
: "${BENCH_ABUSE_SECONDS:=60}"
: "${BENCH_RESULTS:=$root/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"

for tool in go curl psql awk sed sort; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done
pgbench_bin=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1 || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/activityd-bench.XXXXXX")
mkdir -p "$BENCH_RESULTS"
summary=$BENCH_RESULTS/summary.txt
rows=$BENCH_RESULTS/rows.tsv      # one line per measurement, rendered at the end
cpus=$BENCH_RESULTS/cpu.tsv
abuse_rows=$BENCH_RESULTS/abuse.tsv # one line per memory drill
: >"$summary"; : >"$rows"; : >"$cpus"; : >"$abuse_rows"
server_pid="" ref_pid=""
server_env=()    # extra environment of the next start_server (evidence_rows)
schema=""        # set when this script created the schema (and must drop it)
ref_table=""     # set when this script created ref_events in a schema it keeps
admin_url=""     # libpq URL for psql/pgbench (no search_path)
pg_schema=""
redis_prefix="bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n'):"
redis_ok=""      # set once Redis answered (and keys of this run may exist)
started=$(date +%s)

# shellcheck source=test/load/lib.sh
. "$root/test/load/lib.sh"

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_server() { stop_pid "$server_pid"; server_pid=""; }
stop_ref() { stop_pid "$ref_pid"; ref_pid=""; }

psql_schema() { PGOPTIONS="-c search_path=$pg_schema" psql "$admin_url" -qX -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
  local rc=$?
  stop_ref
  stop_server
  if [ -n "$redis_ok" ]; then
    "$tmp/refserver" -redis "$BENCH_REDIS_URL" -prefix "$redis_prefix" -cleanup >&2 \
      || log "could not delete the Redis keys under $redis_prefix: delete them by hand"
  fi
  if [ -n "$schema" ]; then
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 \
      && log "dropped schema $schema" || log "could not drop schema $schema: drop it by hand"
  elif [ -n "$ref_table" ]; then
    psql_schema -c "DROP TABLE IF EXISTS ref_events" >/dev/null 2>&1 || log "could not drop $pg_schema.ref_events"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

isnum() { [[ $1 =~ ^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
ratio() { if isnum "$1" && isnum "$2"; then awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "-"}'; else echo -; fi; }
fmt1() { if isnum "$1"; then awk -v x="$1" 'BEGIN {printf "%.1f", x}'; else echo "${1:--}"; fi; }
fmt2() { if isnum "$1"; then awk -v x="$1" 'BEGIN {printf "%.2f", x}'; else echo "${1:--}"; fi; }

# CPU accounting: clock ticks of the watched process ($watch_pid: the
# server, or the reference server), of every postgres process, and of the
# whole machine, between cpu_begin and cpu_end.
clk=$(getconf CLK_TCK)
ncpu=$(getconf _NPROCESSORS_ONLN)
watch_pid=""
proc_ticks() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}' || echo 0; }
# utime+stime of every live postgres process, plus the children's times the
# postmaster has reaped (cutime+cstime): backends that ended during the
# interval (pgbench's, psql's) still count.
pg_ticks() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '$2 == "(postgres)" {s += $14+$15+$16+$17} END {print s+0}'; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
cpu_begin() {
  c_t0=$(date +%s.%N); c_srv0=$(proc_ticks "${watch_pid:-0}"); c_pg0=$(pg_ticks)
  read -r c_busy0 c_all0 < <(machine_ticks)
}
# cpu_end [LOAD_CORES]: "srv X pg X load X other X all X/N", in cores
cpu_end() {
  local t1 srv1 pg1 busy1 all1
  t1=$(date +%s.%N); srv1=$(proc_ticks "${watch_pid:-0}"); pg1=$(pg_ticks)
  read -r busy1 all1 < <(machine_ticks)
  awk -v t0="$c_t0" -v t1="$t1" -v s0="$c_srv0" -v s1="$srv1" -v p0="$c_pg0" -v p1="$pg1" \
      -v b0="$c_busy0" -v b1="$busy1" -v a0="$c_all0" -v a1="$all1" -v hz="$clk" -v n="$ncpu" -v lc="${1:--}" \
      'BEGIN {w = t1 - t0; if (w <= 0) w = 1
              m = (a1 > a0) ? n * (b1 - b0) / (a1 - a0) : 0
              srv = (s1-s0)/hz/w; pg = (p1-p0)/hz/w; other = m - srv - pg - (lc ~ /^[0-9]/ ? lc : 0)
              printf "srv %.2f pg %.2f load %s other %.2f all %.2f/%d", srv, pg, lc, (other > 0 ? other : 0), m, n}'
}

# Peak resident memory: reset_hwm PID sets a process's VmHWM to its current
# RSS (Linux clear_refs 5), hwm_mb PID reads it in MB.
hwm_reset_ok=1
reset_hwm() { [ -n "$1" ] || return 0; { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null || hwm_reset_ok=0; }
hwm_mb() { awk '/^VmHWM/ {printf "%.0f", $2/1024; f=1} END {if (!f) print "-"}' "/proc/$1/status" 2>/dev/null || echo -; }

# targets STORE KIND C: the targets of a measurement (docs/performance.md),
# in t_ratio and t_p99 ("-" when none is set for these clients; the ratios
# and p99 are PostgreSQL's); peak RSS is <= 150 MB always, on both stores.
rss_target=150
targets() {
  t_ratio=- t_p99=-
  [ "$1" = pg ] || return 0
  case $2 in
    create) [ "$3" = 64 ] && t_ratio=2.0 t_p99=50 ;;
    batch) [ "$3" = 4 ] && t_ratio=0.85 ;;
    list) [ "$3" = 64 ] && t_ratio=0.7 t_p99=50 ;;
    cached) t_ratio=0.5 ;;
    redis) t_ratio=0.8 ;;
  esac
  return 0
}

# add_row STORE KIND WHAT C UNIT REFNAME REF REFP99 REFCPU: one line of the
# summary from the load tool's median line $last (ours: events/s for
# create, batch and seed, req/s otherwise), with $last_cpu and $last_rss.
# An empty REFNAME means no reference by design (SQLite): no ratio target;
# a REFNAME with REF "-" is a reference that failed.
add_row() {
  local store=$1 kind=$2 what=$3 c=$4 unit=$5 refname=${6:--} ref=$7 refp99=$8 refcpu=$9
  local ours p50 p99 errs r verdict=() hit key
  if [ "$unit" = "ev/s" ]; then ours=$(jget events_per_s "$last"); else ours=$(jget rps "$last"); fi
  p50=$(jget p50_ms "$last") p99=$(jget p99_ms "$last") errs=$(jget errors "$last")
  isnum "$ours" || { ours=- p50=- p99=- errs=?; }
  [[ $kind == cached || $kind == redis ]] && isnum "$(jget cache_hit_ratio "$last")" \
    && hit=$(awk -v h="$(jget cache_hit_ratio "$last")" 'BEGIN {printf "%.0f", 100*h}') && what="$what, $hit% hit"
  targets "$store" "$kind" "$c"
  [ "$refname" != - ] || t_ratio=-
  r=$(ratio "$ours" "$ref")
  if [ "$t_ratio" != - ]; then
    if [ "$r" = - ]; then verdict+=("no-ref")
    elif awk -v a="$r" -v b="$t_ratio" 'BEGIN {exit !(a < b)}'; then verdict+=("ratio"); fi
  fi
  if [ "$t_p99" != - ] && { ! isnum "$p99" || awk -v a="$p99" -v b="$t_p99" 'BEGIN {exit !(a > b)}'; }; then verdict+=("p99"); fi
  if ! isnum "$last_rss" || [ "$last_rss" -gt "$rss_target" ]; then verdict+=("rss"); fi
  [ "$errs" = 0 ] || verdict+=("errors")
  local v=ok; [ "${#verdict[@]}" -eq 0 ] || v="MISS:$(IFS=,; echo "${verdict[*]}")"
  local tr=-; [ "$t_ratio" = - ] || tr=">=$t_ratio"
  local tp=-; [ "$t_p99" = - ] || tp="<=$t_p99"
  # sort key: the store, then the targets table's order of the measurements
  key=$([ "$store" = pg ] && echo 1 || echo 2)
  case $kind in create) key+=1 ;; batch) key+=2 ;; list) key+=3 ;; cached) key+=4 ;; redis) key+=5 ;; *) key+=6 ;; esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" \
    "$store" "$what" "$c" "$(fmt1 "$ours")" "$unit" "$refname" "$(fmt1 "$ref")" "$r" "$tr" \
    "$(fmt2 "$p50")" "$(fmt2 "$p99")" "$tp" "$(fmt2 "$refp99")" "$errs" "$last_rss" "$v" >>"$rows"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$store" "$what" "$c" "$last_cpu" "${refcpu:--}" >>"$cpus"
  log "row: $(tail -n1 "$rows" | cut -f2- | tr '\t' '|')"
}

# render: the summary table (column widths from the contents).
render() {
  { printf 'store\tmeasurement\tc\tours\tunit\treference\tref\tratio\ttarget\tp50 ms\tp99 ms\tp99 target\tref p99\terrors\tpeak RSS MB\tverdict\n'
    sort -s -t$'\t' -k1,1 "$rows" | cut -f2-; } | awk -F'\t' '
      {for (i = 1; i <= NF; i++) {cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i)}; if (NF > nf) nf = NF}
      END {for (r = 1; r <= NR; r++) {line = ""
             for (i = 1; i <= nf; i++) {num = (i == 3 || i == 4 || i == 7 || i == 8 || (i >= 10 && i <= 15))
               line = line (i > 1 ? "  " : "") sprintf(num ? "%" w[i] "s" : "%-" w[i] "s", cell[r, i])}
             sub(/ +$/, "", line); print line}}'
}
render_cpu() {
  { printf 'store\tmeasurement\tc\tours: cores during the runs\treference: cores during its runs\n'
    sort -s -t$'\t' -k1,1 "$cpus" | cut -f2-; } | awk -F'\t' '
      {for (i = 1; i <= NF; i++) {cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i)}}
      END {for (r = 1; r <= NR; r++) {line = ""
             for (i = 1; i <= 5; i++) line = line (i > 1 ? "  " : "") sprintf("%-" w[i] "s", cell[r, i])
             sub(/ +$/, "", line); print line}}'
}

token="adt_bench_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# start_server NAME DATABASE_URL [CACHE_TTL [REDIS_URL]]: starts activityd
# and waits for /readyz. The read cache is off unless CACHE_TTL is given
# (in process, or in Redis at REDIS_URL under this run's key prefix); the
# counting job is scheduled @yearly so that no tick falls inside a
# measurement. A server that does not come up is tried again on another
# port (a port found free can be taken before the server binds it).
start_server() {
  local name=$1 url=$2 ttl=${3:-0} redis=${4:-} port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    base="http://127.0.0.1:$port"
    env -u REDIS_URL -u CACHE_PREFIX ${redis:+REDIS_URL="$redis"} ${redis:+CACHE_PREFIX="${redis_prefix}$name:"} \
      DATABASE_URL="$url" HTTP_ADDR="127.0.0.1:$port" BOOTSTRAP_ADMIN_TOKEN="$token" \
      LOG_LEVEL=warn LOG_FORMAT=text AUTH_MODE=token CACHE_TTL="$ttl" COUNT_SCHEDULE=@yearly \
      CHECKPOINT_SCHEDULE=off CHECKPOINT_SINKS=none CHECKPOINT_KEY_FILE="$tmp/checkpoint.key" "${server_env[@]}" \
      "$tmp/activityd" serve >>"$BENCH_RESULTS/server-$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 120); do
      if curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1; then
        log "$name: activityd pid $server_pid on $base"
        watch_pid=$server_pid
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

# start_ref NAME USERS [ARGS...]: the reference server (test/load/refserver)
# on a free port, fed with every user's page from the running activityd
# ($base), which also fills activityd's cache; sets ref_base.
start_ref() {
  local name=$1 n=$2 port attempt
  shift 2
  for attempt in 1 2 3; do
    port=$(free_port)
    ref_base="http://127.0.0.1:$port"
    "$tmp/refserver" -addr "127.0.0.1:$port" -source "$base" -token "$token" -users "$n" -limit 50 "$@" \
      >>"$BENCH_RESULTS/refserver-$name.log" 2>&1 &
    ref_pid=$!
    for _ in $(seq 1 1200); do
      if curl -fsS --max-time 2 "$ref_base/healthz" >/dev/null 2>&1; then
        log "$name: refserver pid $ref_pid on $ref_base ($(grep -o 'fetched [0-9]* pages ([0-9]* bytes)' "$BENCH_RESULTS/refserver-$name.log" | tail -n1))"
        return 0
      fi
      kill -0 "$ref_pid" 2>/dev/null || break
      sleep 0.25
    done
    log "$name: refserver did not become ready (attempt $attempt); log: $BENCH_RESULTS/refserver-$name.log"
    stop_ref
  done
  return 1
}

# load STORE NAME SCENARIO C URL [ARGS...]: runs the load tool BENCH_RUNS
# times (after a warm-up) against URL; leaves the median line in $last, the
# CPU in $last_cpu and the peak RSS of $watch_pid during the runs in
# $last_rss.
load() {
  local store=$1 name=$2 scenario=$3 c=$4 url=$5 rc=0
  shift 5
  local out="$BENCH_RESULTS/load-$store-$name-c$c.jsonl"
  log "$store: $name, $c clients, $BENCH_RUNS x ${BENCH_SECONDS}s"
  reset_hwm "$watch_pid"
  cpu_begin
  "$tmp/load" -url "$url" -token "$token" -scenario "$scenario" -c "$c" -d "${BENCH_SECONDS}s" \
    -warmup "$BENCH_WARMUP" -runs "$BENCH_RUNS" -json -label "$store $name" "$@" >"$out" || rc=$?
  last=$(tail -n1 "$out")
  last_cpu=$(cpu_end "$(fmt2 "$(jget load_cores "$last")")")
  last_rss=$(hwm_mb "$watch_pid")
  [ "$rc" -eq 0 ] || log "$store: $name c=$c: the load tool exited $rc; see $out"
  grep -q '"median_of"' <<<"$last" || [ "$BENCH_RUNS" -eq 1 ] || log "no median line in $out"
}

# pgb NAME SCRIPT C USERS: BENCH_RUNS pgbench runs of SCRIPT (-M prepared,
# after a 2 s warm-up) on ref_events; sets ref_tps, ref_p50, ref_p99
# (medians) and ref_cpu, all "-" when there is no reference.
pgb() {
  local name=$1 script=$2 c=$3 n=$4 j tps=() p50=() p99=() dir i
  ref_tps=- ref_p50=- ref_p99=- ref_cpu=-
  if [ "$BENCH_PGBENCH" != 1 ] || [ -z "$pgbench_bin" ] || [ -z "$admin_url" ]; then return 0; fi
  j=$((c < ncpu ? c : ncpu))
  log "pgbench $name: $c clients, $BENCH_RUNS x ${BENCH_SECONDS}s"
  local common=(-n -M prepared -f "$script" -c "$c" -j "$j" -D "users=$n")
  if ! PGOPTIONS="-c search_path=$pg_schema" "$pgbench_bin" "${common[@]}" -T 2 "$admin_url" \
      >"$BENCH_RESULTS/pgbench-$name-warmup.txt" 2>&1; then
    log "pgbench $name failed: $(tail -n2 "$BENCH_RESULTS/pgbench-$name-warmup.txt" | tr '\n' ' ')"
    return 0
  fi
  watch_pid="" cpu_begin
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
  ref_cpu=$(watch_pid="" cpu_end)
  watch_pid=$server_pid
  [ "${#tps[@]}" -gt 0 ] || return 0
  ref_tps=$(median "${tps[@]}") ref_p50=$(median "${p50[@]}") ref_p99=$(median "${p99[@]}")
}

# copy_ref N USERS: COPY of N rows of the batch scenario's shape into
# ref_events, BENCH_RUNS times, each in a transaction rolled back; sets
# copy_eps (median rows/s) and copy_cpu.
copy_ref() {
  local n=$1 u=$2 csv="$tmp/copy.csv" t0 t1 eps=() i
  copy_eps=- copy_cpu=-
  if [ "$BENCH_PGBENCH" != 1 ] || [ -z "$admin_url" ]; then return 0; fi
  log "pg: COPY reference, $BENCH_RUNS x $n rows"
  # \copy takes one line
  psql_schema -c "\\copy (SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex((random() * 4095)::int), 3, '0') || '8' || lpad(to_hex(g), 15, '0'))::uuid, 1 + (random() * ($u - 1))::bigint, (ARRAY['login', 'logout', 'upload_file', 'created', 'updated', 'deleted', 'viewed'])[g % 7 + 1], 'PENDING', now() - random() * interval '30 days', now(), now(), '{\"device\":\"bench\",\"ip\":\"10.0.0.1\",\"seq\":' || g || '}' FROM generate_series(1, $n) g) TO '$csv' WITH (FORMAT csv)" \
    || { log "pg: could not write the COPY input"; return 0; }
  watch_pid="" cpu_begin
  for i in $(seq 1 "$BENCH_RUNS"); do
    t0=$(date +%s.%N)
    printf 'BEGIN;\n\\copy ref_events (id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata) FROM %s WITH (FORMAT csv)\nROLLBACK;\n' "'$csv'" \
      | psql_schema >/dev/null || { log "pg: COPY run $i failed"; continue; }
    t1=$(date +%s.%N)
    eps+=("$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n/(b-a)}')")
  done
  copy_cpu=$(watch_pid="" cpu_end)
  watch_pid=$server_pid
  [ "${#eps[@]}" -eq 0 ] || copy_eps=$(median "${eps[@]}")
}

# fill_ref ROWS USERS: ref_events with the seed's rows (ref_events.sql).
fill_ref() {
  local n=$1 u=$2 t0
  log "pg: filling ref_events with $n rows over $u users"
  t0=$(date +%s)
  ref_table=1
  psql_schema -v rows="$n" -v users="$u" -f "$root/test/load/pgbench/ref_events.sql" >/dev/null
  log "pg: ref_events filled in $(( $(date +%s) - t0 ))s"
}

# vacuum_schema: VACUUM (ANALYZE) of every table of the schema, whatever
# the service's tables are called (partitions through their parent).
vacuum_schema() {
  log "pg: VACUUM (ANALYZE) of every table in $pg_schema"
  printf '%s\n' "SELECT format('VACUUM (ANALYZE) %I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$pg_schema' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname \\gexec" \
    | psql "$admin_url" -qX -v ON_ERROR_STOP=1 >/dev/null
}

# cached_rows STORE KIND USERS TITLE: for each of BENCH_CACHED_CLIENTS, the
# cached list through activityd, then through the refserver when one runs
# ($refname), and one summary row of both.
cached_rows() {
  local store=$1 kind=$2 cn=$3 title=$4 c cached_ours cached_cpu cached_rss
  for c in $BENCH_CACHED_CLIENTS; do
    load "$store" "$kind" list "$c" "$base" -users "$cn" -limit 50
    cached_ours=$last cached_cpu=$last_cpu cached_rss=$last_rss
    ref_rps=- ref_p99=- ref_cpu=-
    if [ -n "$refname" ]; then
      watch_pid=$ref_pid
      load "$store" "$kind-ref" list "$c" "$ref_base" -users "$cn" -limit 50
      ref_rps=$(jget rps "$last") ref_p99=$(jget p99_ms "$last") ref_cpu="$last_cpu (refserver peak RSS ${last_rss} MB)"
      watch_pid=$server_pid
    fi
    last=$cached_ours last_cpu=$cached_cpu last_rss=$cached_rss
    add_row "$store" "$kind" "$title" "$c" req/s "${refname:+$refname c$c}" "$ref_rps" "$ref_p99" "$ref_cpu"
  done
}

# abuse STORE URL USERS: the memory drills (see the top) against activityd
# with its default settings, one line each in $abuse_rows with the answers
# counted by status and the peak RSS (VmHWM, reset before each drill). Run
# after a store's suite: the padded batches would change the pages the
# cached rows read.
abuse() {
  local store=$1 url=$2 n=$3 name c what out by rss v
  [ "$BENCH_ABUSE" = 1 ] || return 0
  start_server "$store-abuse" "$url" 60s
  local -a args
  for name in mixed headers batches; do
    case $name in
      mixed) c=64 what="mixed: 80% GET list 50, 20% POST /v1/events"
        args=(-scenario mixed -users "$n" -limit 50) ;;
      headers) c=128 what="GET with a ~1 MiB header, no credentials (431)"
        args=(-scenario headers -header-bytes 1048576) ;;
      batches) c=32 what="POST /v1/events/batch of 1000, ~1 MiB bodies"
        args=(-scenario batch -users "$n" -batch 1000 -body-bytes 1048576) ;;
    esac
    out="$BENCH_RESULTS/abuse-$store-$name.jsonl"
    log "$store: memory drill $name, $c clients, ${BENCH_ABUSE_SECONDS}s"
    reset_hwm "$server_pid"
    "$tmp/load" -url "$base" -token "$token" -c "$c" -d "${BENCH_ABUSE_SECONDS}s" -warmup 0 -runs 1 -timeout 60s \
      -json -label "$store abuse $name" "${args[@]}" >"$out" || true # exit 1: some answers were not the expected one
    last=$(tail -n1 "$out")
    rss=$(hwm_mb "$server_pid")
    by=$(grep -o '"errors_by_status":{[^}]*}' <<<"$last" | sed 's/"errors_by_status"://; s/[{}"]//g; s/,/ /g' || true)
    v=ok; if ! isnum "$rss" || [ "$rss" -gt "$rss_target" ]; then v=MISS:rss; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$store" "$what" "$c" "$(fmt1 "$(jget seconds "$last")")" \
      "$(jget requests "$last")" "$(jget ok "$last")" "${by:--}" "$rss" "$v" >>"$abuse_rows"
    log "abuse: $(tail -n1 "$abuse_rows" | tr '\t' '|')"
  done
  stop_server
}
render_abuse() {
  { printf 'store\tmemory drill\tc\ts\trequests\tas expected\tother answers\tpeak RSS MB\tverdict\n'
    cat "$abuse_rows"; } | awk -F'\t' '
      {for (i = 1; i <= NF; i++) {cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i)}}
      END {for (r = 1; r <= NR; r++) {line = ""
             for (i = 1; i <= 9; i++) {num = (i == 3 || i == 4 || i == 5 || i == 6 || i == 8)
               line = line (i > 1 ? "  " : "") sprintf(num ? "%" w[i] "s" : "%-" w[i] "s", cell[r, i])}
             sub(/ +$/, "", line); print line}}'
}

# ------------------------------------------------------------------ suites

# suite STORE URL SEED USERS: every scenario against one store; with
# references when STORE is pg.
suite() {
  local store=$1 url=$2 seed_n=$3 n=$4 c seeded list_tps=- list_p99=- list_cpu=- refname
  local refs=""; [ "$store" = pg ] && refs=1
  start_server "$store" "$url"

  log "$store: seeding $seed_n events over $n users"
  reset_hwm "$watch_pid"
  cpu_begin
  "$tmp/load" -url "$base" -token "$token" -seed "$seed_n" -users "$n" -c 4 -batch 1000 -json \
    -label "$store seed" >"$BENCH_RESULTS/load-$store-seed.jsonl" || log "$store: seed reported errors"
  last=$(tail -n1 "$BENCH_RESULTS/load-$store-seed.jsonl")
  last_cpu=$(cpu_end "$(fmt2 "$(jget load_cores "$last")")") last_rss=$(hwm_mb "$watch_pid")
  add_row "$store" seed "POST /v1/events/batch seed (1000/req)" 4 ev/s - - - -
  seeded=$(jget events "$last"); isnum "$seeded" || seeded=$seed_n
  if [ -n "$refs" ]; then
    fill_ref "$seeded" "$n"
    vacuum_schema
    echo "ref_events: $seeded rows over $n users, as activityd's seed (test/load/pgbench/ref_events.sql)" >>"$summary"
  fi

  if [ -n "$refs" ] && [ -n "$BENCH_LIST_CLIENTS" ]; then
    pgb "list-c$BENCH_LIST_REF_CLIENTS" "$root/test/load/pgbench/list.sql" "$BENCH_LIST_REF_CLIENTS" "$n"
    list_tps=$ref_tps list_p99=$ref_p99 list_cpu=$ref_cpu
  fi
  for c in $BENCH_LIST_CLIENTS; do
    load "$store" list list "$c" "$base" -users "$n" -limit 50
    add_row "$store" list "GET /v1/users/{id}/events?limit=50, uncached" "$c" req/s \
      "${refs:+pgbench SELECT ref_events c$BENCH_LIST_REF_CLIENTS}" "$list_tps" "$list_p99" "$list_cpu"
    [ "$(jget x_cache "$last")" = 0 ] || [ "$(jget cache_hit_ratio "$last")" = 0 ] \
      || log "$store: list c=$c: cache hits during the uncached list: $(jget cache_hit_ratio "$last")"
  done

  for c in $BENCH_CREATE_CLIENTS; do
    load "$store" create create "$c" "$base" -users "$n"
    local mine=$last mine_cpu=$last_cpu mine_rss=$last_rss
    ref_tps=- ref_p99=- ref_cpu=-
    [ -z "$refs" ] || pgb "create-c$c" "$root/test/load/pgbench/create.sql" "$c" "$n"
    last=$mine last_cpu=$mine_cpu last_rss=$mine_rss
    add_row "$store" create "POST /v1/events" "$c" ev/s "${refs:+pgbench INSERT ref_events c$c}" "$ref_tps" "$ref_p99" "$ref_cpu"
  done

  copy_eps=- copy_cpu=-
  [ -z "$refs" ] || [ -z "$BENCH_BATCH_CLIENTS" ] || copy_ref "$BENCH_COPY_ROWS" "$n"
  for c in $BENCH_BATCH_CLIENTS; do
    load "$store" batch batch "$c" "$base" -users "$n" -batch 1000
    add_row "$store" batch "POST /v1/events/batch (1000/req)" "$c" ev/s "${refs:+COPY ref_events (1 stream)}" "$copy_eps" - "$copy_cpu"
  done
  echo "$store: activityd's peak RSS over the whole uncached run: $(hwm_mb "$server_pid") MB (VmHWM, never reset: includes the seed)" >>"$summary"
  stop_server
  [ "$BENCH_EVIDENCE" != 1 ] || evidence_rows "$store" "$url" "$n"

  [ -n "$BENCH_CACHED_CLIENTS" ] || return 0

  local cn=$((BENCH_CACHED_USERS < n ? BENCH_CACHED_USERS : n))
  # the cached list, in process: the refserver fetches every page (which
  # fills activityd's cache), then activityd is measured, then the map
  start_server "$store-cached" "$url" "$BENCH_CACHE_TTL"
  refname=""
  if [ -n "$refs" ] && start_ref "$store-map" "$cn"; then refname="map handler"; fi
  cached_rows "$store" cached "$cn" "GET list 50, in-process cache"
  stop_ref
  stop_server

  # the cached list, in Redis
  [ -n "$BENCH_REDIS_URL" ] || return 0
  if [ -z "$redis_ok" ]; then
    if "$tmp/refserver" -redis "$BENCH_REDIS_URL" -prefix "$redis_prefix" -cleanup >/dev/null 2>"$tmp/redis-check"; then
      redis_ok=1
    else
      log "Redis at $(mask "$BENCH_REDIS_URL") does not answer: no Redis rows ($(head -c 200 "$tmp/redis-check"))"
      echo "Redis at $(mask "$BENCH_REDIS_URL") did not answer: no Redis rows" >>"$summary"
      BENCH_REDIS_URL=""
      return 0
    fi
  fi
  start_server "$store-redis" "$url" "$BENCH_CACHE_TTL" "$BENCH_REDIS_URL"
  refname=""
  if [ -n "$refs" ] && start_ref "$store-redis" "$cn" -redis "$BENCH_REDIS_URL" -prefix "$redis_prefix"; then
    refname="go-redis GET handler"
  fi
  cached_rows "$store" redis "$cn" "GET list 50, Redis cache"
  stop_ref
  stop_server
}

# evidence_rows STORE URL USERS: issue 18's cost of chaining in the same
# run: the create and batch scenarios again with EVIDENCE_CHAINS=false,
# then chained again, on the same store (the rows above are the first
# chained pass; the table grows as the passes go, so the chained passes
# bracket the unchained one).
evidence_rows() {
  local store=$1 url=$2 n=$3 c pass
  for pass in unchained chained; do
    server_env=()
    [ "$pass" = chained ] || server_env=(EVIDENCE_CHAINS=false)
    start_server "$store-$pass" "$url"
    for c in $BENCH_CREATE_CLIENTS; do
      load "$store" "create-$pass" create "$c" "$base" -users "$n"
      add_row "$store" create "POST /v1/events, $pass" "$c" ev/s - - - -
    done
    for c in $BENCH_BATCH_CLIENTS; do
      load "$store" "batch-$pass" batch "$c" "$base" -users "$n" -batch 1000
      add_row "$store" batch "POST /v1/events/batch (1000/req), $pass" "$c" ev/s - - - -
    done
    stop_server
  done
  server_env=()
}

# The service may be mid-change: a build that fails is tried again a few
# times, a minute apart.
build() {
  local attempt
  if [ -n "${BENCH_ACTIVITYD:-}" ]; then
    cp "$BENCH_ACTIVITYD" "$tmp/activityd"
    return 0
  fi
  for attempt in 1 2 3 4 5; do
    if go build -o "$tmp/activityd" ./cmd/activityd 2>"$tmp/build.err"; then return 0; fi
    log "building activityd failed (attempt $attempt/5): $(head -n3 "$tmp/build.err" | tr '\n' ' ')"
    [ "$attempt" = 5 ] || sleep 60
  done
  cat "$tmp/build.err" >&2
  return 1
}
log "building activityd, the load tool and the refserver into $tmp"
build
code_rev="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "${BENCH_ACTIVITYD:-}" ] || code_rev="binary $BENCH_ACTIVITYD"
code_dirty=$(git status --porcelain 2>/dev/null | grep -cv ' test/load/' || true)
go build -o "$tmp/load" ./test/load
go build -o "$tmp/refserver" ./test/load/refserver

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
watch_pid="" cpu_begin; sleep 3; idle_cpu=$(cpu_end | sed -E 's/.*all ([0-9.]+).*/\1/')
{
  echo "command: $invocation"
  echo "code: $code_rev, $code_dirty uncommitted files outside test/load; $(go version | cut -d' ' -f3)"
  echo "activityd load benchmarks (docs/performance.md), $(date -u +%FT%TZ), $ncpu cores, $(uname -r); $idle_cpu cores busy with other work just before the start"
  echo "runs: median of $BENCH_RUNS x ${BENCH_SECONDS}s after a $BENCH_WARMUP warm-up; load tool, server, PostgreSQL and references on the same cores"
  echo "ratio: ours / reference, measured in the same run (create: events/s vs INSERTs/s; batch: events/s vs COPY rows/s; lists: req/s)"
  echo "peak RSS: activityd's VmHWM during that measurement (reset before it); target <= $rss_target MB on every row"
} >>"$summary"

if [[ $primary == sqlite:* ]]; then
  suite sqlite "$primary" "$BENCH_SEED_SQLITE" "$BENCH_USERS_SQLITE"
  abuse sqlite "$primary" "$BENCH_USERS_SQLITE"
else
  [ -n "$pgbench_bin" ] || log "pgbench not found: no SQL references (apt-get install postgresql-client)"
  suite pg "$primary" "$BENCH_SEED_PG" "$BENCH_USERS"
  abuse pg "$primary" "$BENCH_USERS"
  if [ -n "$schema" ]; then # done with it: no autovacuum of it during the SQLite suite
    psql "$admin_url" -qX -v ON_ERROR_STOP=1 -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 && log "dropped schema $schema" && schema=""
  fi
  if [ "$BENCH_SQLITE" = 1 ]; then
    suite sqlite "sqlite:$tmp/bench.db" "$BENCH_SEED_SQLITE" "$BENCH_USERS_SQLITE"
    abuse sqlite "sqlite:$tmp/bench.db" "$BENCH_USERS_SQLITE"
  fi
fi

[ "$hwm_reset_ok" = 1 ] || echo "note: VmHWM could not be reset (clear_refs): peak RSS is since the server started" >>"$summary"
{
  echo
  render
  echo
  echo "CPU (cores; srv: activityd or the refserver, pg: every postgres process, load: the load tool, other: the rest of the machine, pgbench and psql included)"
  render_cpu
  if [ -s "$abuse_rows" ]; then
    echo
    echo "Peak RSS under abuse (issue 13's memory drills; activityd's default settings, in-process cache on; one run of ${BENCH_ABUSE_SECONDS}s each; target <= $rss_target MB)"
    render_abuse
  fi
  echo
  echo "total wall time $(( $(date +%s) - started ))s; raw outputs in $BENCH_RESULTS"
} >>"$summary"
echo
cat "$summary"
