# Helpers shared by the load scripts (run.sh, telemetry.sh); sourced.

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# median X...: the median of numbers ("nan" for none)
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# jget FIELD JSON: a scalar field of a flat JSON line
jget() { sed -E 's/.*"'"$1"'":("[^"]*"|[^,}]*).*/\1/' <<<"$2"; }

# free_port: a loopback TCP port nothing listens on
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
