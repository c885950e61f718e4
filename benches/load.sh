#!/usr/bin/env bash
# Whole-service load benchmark: wrk POSTs realistic beacons to the release collector (with a
# private ClickHouse behind it) and, in the same invocation and with the same wrk settings,
# to an nginx that answers `return 204;` (the baseline: what HTTP on this machine costs), and
# to benches/floor, the collector's own hyper set-up answering 202 and doing nothing else (what
# HTTP costs with the collector's stack, before its work).
# Then both again at a constant rate (half the collector's closed-loop throughput unless --rate
# says), from benches/rate, which measures latency from when each request was due (wrk2-style).
# Prints a markdown table (req/s, latency p50/p99/p99.9, non-2xx; for the collector also
# peak RSS, CPU per event and rows that reached ClickHouse) and writes it, with details, to
# .work/bench/load-<timestamp>.md; raw wrk output and logs go to .work/bench/load-<timestamp>/.
# Loopback only; every wait has a deadline; everything started is stopped on exit or Ctrl-C.
#
# usage: benches/load.sh [--duration S] [--connections N] [--threads T] [--warmup S] [--perf]
#                        [--durability buffered|fsync] [--workers N] [--rate R] [--repeat N]
#   --duration S     measured run per target, seconds (default 15)
#   --connections N  open connections (default 64)
#   --threads T      wrk threads (default 2)
#   --warmup S       unreported warm-up run before each measured run, seconds (default 3)
#   --perf           also profile the collector during its measured run (perf record with
#                    DWARF call graphs: perf-symbols.txt by self time, perf-callers.txt inclusive)
#   --durability M   the collector's [sink] durability (default buffered, the shipped default)
#   --workers N      the collector's [server] worker_threads and nginx's worker_processes
#                    (default: one per CPU)
#   --rate R         requests/s of the constant-rate runs (default: half the collector's
#                    measured closed-loop throughput)
#   --repeat N       N whole runs in a row (each with its own report), then a summary of
#                    their key figures with the median of each (default 1)
# Exit status: 0 when the collector answered 2xx to every request and every accepted beacon
# reached ClickHouse; 1 otherwise (the table is still printed); 2 for bad arguments.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH_DIR/../scripts/lib.sh"

usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; }

duration=15 connections=64 threads=2 warmup=3 perf="" durability=buffered workers="$(nproc)" rate="" repeat=1
# The arguments of each run of --repeat: all but --repeat itself.
single=() skip=""
for arg in "$@"; do
    if [ -n "$skip" ]; then skip=""; elif [ "$arg" = --repeat ]; then skip=1; else single+=("$arg"); fi
done
while [ $# -gt 0 ]; do
    case "$1" in
        --duration|--connections|--threads|--warmup|--durability|--workers|--rate|--repeat)
            [ $# -ge 2 ] || { log "$1 needs a value"; usage >&2; exit 2; } ;;&
        --duration) duration="${2:-}"; shift 2 ;;
        --connections) connections="${2:-}"; shift 2 ;;
        --threads) threads="${2:-}"; shift 2 ;;
        --warmup) warmup="${2:-}"; shift 2 ;;
        --perf) perf=1; shift ;;
        --durability) durability="${2:-}"; shift 2 ;;
        --workers) workers="${2:-}"; shift 2 ;;
        --rate) rate="${2:-}"; shift 2 ;;
        --repeat) repeat="${2:-}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "$durability" in buffered|fsync) ;; *) log "--durability: buffered or fsync"; usage >&2; exit 2 ;; esac
for value in "$duration" "$connections" "$threads" "$warmup" "$workers" "$repeat" ${rate:+"$rate"}; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { log "not a positive integer: '$value'"; usage >&2; exit 2; }
done
[ "$threads" -le "$connections" ] || { log "--threads must not exceed --connections"; exit 2; }

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

# --repeat: the same run N times (this script, each with its own report and figures file),
# then one table of their key figures and the median of each. One run's figures on a shared
# machine move a lot (benches/README.md); the median of several is the one to compare.
if [ "$repeat" -gt 1 ]; then
    SUMMARY="$WORK/bench/load-$STAMP-summary.md"
    KEYS="throughput_ratio cpu_ratio floor_cpu_ratio collector_us floor_us nginx_us clickhouse_us peak_rss_mib rate_p99_ms nginx_rate_p99_ms"
    status=0 rows=""
    mkdir -p "$WORK/bench"
    for i in $(seq 1 "$repeat"); do
        log "run $i of $repeat: benches/load.sh ${single[*]}"
        out="$WORK/bench/load-$STAMP-run$i.log"
        "$0" "${single[@]}" >"$out" 2>&1 || { status=1; log "run $i failed its checks or stopped; see $out"; }
        report="$(sed -n 's/^\[load.sh\] report: //p' "$out" | tail -n 1)"
        if [ -z "$report" ] || [ ! -s "${report%.md}/figures.txt" ]; then status=1; continue; fi
        grep '^collector/nginx throughput' "$report" >&2 || true
        rows+="$(basename "$report" .md)"
        for k in $KEYS; do rows+=" $(awk -F= -v k="$k" '$1 == k { print $2 }' "${report%.md}/figures.txt")"; done
        rows+=$'\n'
    done
    [ -n "$rows" ] || die "no run produced its figures"
    {
        echo "## webstats load benchmark: $repeat runs, $STAMP"
        echo
        echo "- \`benches/load.sh ${single[*]}\` $repeat times; each run's report is named in the first column"
        echo
        echo "| run | collector/nginx req/s | CPU per event x nginx | floor CPU x nginx | collector µs/event | floor µs/request | nginx µs/request | ClickHouse µs/event | peak RSS MiB | p99 at the constant rate, ms | nginx p99 there, ms |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        printf '%s' "$rows" | awk '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; print "" }'
        # The median of each column (the mean of the middle two for an even count).
        printf '%s' "$rows" | awk '
            { n++; for (i = 2; i <= NF; i++) v[i, n] = $i; cols = NF }
            END {
                printf "| **median** |"
                for (i = 2; i <= cols; i++) {
                    for (a = 1; a <= n; a++) x[a] = v[i, a] + 0
                    for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                    printf " **%g** |", (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                }
                print ""
            }'
        if [ "$status" -ne 0 ]; then
            echo
            echo "Some runs failed their checks or stopped: see \`.work/bench/load-$STAMP-run*.log\`."
        fi
    } >"$SUMMARY"
    cat "$SUMMARY"
    log "summary: $SUMMARY"
    exit "$status"
fi
REPORT="$WORK/bench/load-$STAMP.md"
RAW="$WORK/bench/load-$STAMP"      # wrk output, collector log, perf report: kept
TMP=""                              # configs, nginx prefix and pid: removed on exit
COLLECTOR_PID="" NGINX_PID="" FLOOR_PID="" WRK_PID="" RATE_PID="" PERF_PID="" CH_STARTED=""
CH_NAME=bench

# ---------------------------------------------------------------------------------------
# Cleanup: runs on every exit (success, failure, Ctrl-C, SIGTERM). Idempotent.

# stop_pid PID SIGNAL SECONDS: signal PID, wait for it to exit, SIGKILL it after SECONDS.
stop_pid() {
    local pid="$1" signal="$2" seconds="$3" deadline
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + seconds))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still running after ${seconds}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$WRK_PID" TERM 5
    stop_pid "$RATE_PID" TERM 5
    stop_pid "$PERF_PID" TERM 10
    if [ -n "$NGINX_PID" ]; then
        # Workers are the master's children: remember them in case the master must be killed.
        local workers
        workers="$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)"
        stop_pid "$NGINX_PID" TERM 10
        for pid in $workers; do stop_pid "$pid" KILL 2; done
    fi
    stop_pid "$FLOOR_PID" TERM 5
    # SIGTERM makes the collector flush its buffers; shutdown_timeout_ms bounds that.
    stop_pid "$COLLECTOR_PID" TERM 15
    [ -n "$CH_STARTED" ] && "$ROOT/scripts/clickhouse.sh" stop --name "$CH_NAME" >/dev/null 2>&1
    if [ -n "$TMP" ]; then
        [ -s "$TMP/nginx/nginx-error.log" ] && cp "$TMP/nginx/nginx-error.log" "$RAW/" 2>/dev/null
        rm -rf "$TMP"
    fi
    [ "$status" -eq 0 ] || log "failed (exit $status); logs in $RAW"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# Small helpers.

# wait_until SECONDS WHAT CMD...: run CMD every 0.2 s until it succeeds; die after SECONDS.
wait_until() {
    local seconds="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || die "$what: not within ${seconds}s"
        sleep 0.2
    done
}

http_status() {  # http_status METHOD URL: print the status code
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X "$1" "$2" || true
}
collector_ready() {
    kill -0 "$COLLECTOR_PID" 2>/dev/null || die "the collector exited; see $RAW/collector.log"
    [ "$(http_status GET "http://127.0.0.1:$COLLECTOR_PORT/readyz")" = 200 ]
}
nginx_ready() {
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(cat "$TMP/nginx/nginx-error.log" 2>/dev/null)"
    [ "$(http_status POST "http://127.0.0.1:$NGINX_PORT/api/event")" = 204 ]
}
floor_ready() {
    kill -0 "$FLOOR_PID" 2>/dev/null || die "the floor exited; see $RAW/floor.log"
    [ "$(http_status POST "http://127.0.0.1:$FLOOR_PORT/api/event")" = 202 ]
}

ch_query() {  # ch_query SQL: print the result
    curl -sS --fail --max-time 10 -H "X-ClickHouse-User: admin" -H "X-ClickHouse-Key: $WEBSTATS_CH_PASSWORD_ADMIN" \
        "http://127.0.0.1:$CH_HTTP_PORT/" --data-binary "$1"
}

# cpu_ticks PID [sys]: utime+stime (with sys: stime only, the kernel's share) in clock ticks
# (fields 14 and 15 of /proc/PID/stat; the command
# name in field 2 is cut off first since it may contain spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk -v sys="${2:-}" '{ print (sys ? 0 : $12) + $13 }'; }
# machine_ticks: "busy total" jiffies of all CPUs (busy = all but idle and iowait).
# Fields 2-9: user nice system idle iowait irq softirq steal (guest time is inside user).
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# busy_pct BUSY TOTAL: percent of all CPUs busy since machine_ticks printed BUSY TOTAL.
busy_pct() { local b t; read -r b t < <(machine_ticks); echo $(( 100 * (b - $1) / (t - $2) )); }
# nginx_ticks [sys]: cpu_ticks of the nginx master and its workers together.
nginx_ticks() {
    local pid total=0
    for pid in "$NGINX_PID" $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children"); do
        total=$((total + $(cpu_ticks "$pid" "${1:-}")))
    done
    echo "$total"
}
# status_kib PID FIELD: a "FIELD: N kB" line of /proc/PID/status, in KiB.
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# value FILE KEY: the number after "KEY=" on a "BENCH ..." line of beacon.lua's done().
value() { grep -o "\b$2=[0-9.]*" "$1" | head -n 1 | cut -d= -f2; }
# non_2xx FILE: wrk's "Non-2xx or 3xx responses: N" line (absent when N is 0).
non_2xx() { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1"; }
# ok_count FILE: requests answered 2xx (wrk counts 4xx/5xx as "Non-2xx"; none answer 3xx).
ok_count() { echo $(( $(value "$1" requests) - $(non_2xx "$1") )); }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

# run_wrk LABEL URL SECONDS OUT: one wrk run with the beacon script; output saved to OUT.
# In the background and waited for, so that Ctrl-C/SIGTERM reach our trap at once.
run_wrk() {
    local label="$1" url="$2" seconds="$3" out="$4"
    log "wrk $label: ${seconds}s, $threads threads, $connections connections -> $url"
    timeout -k 5 $((seconds + 30)) wrk --threads "$threads" --connections "$connections" \
        --duration "${seconds}s" --latency --script "$BENCH_DIR/beacon.lua" "$url" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$out" >&2; WRK_PID=""; die "wrk failed against $label"; }
    WRK_PID=""
    grep -q '^BENCH requests=' "$out" || { cat "$out" >&2; die "wrk printed no summary for $label"; }
}

# clickhouse_settle: wait (at most 30 s) until ClickHouse uses under 10% of a CPU, so that
# the merges after a closed-loop run do not steal CPU from a constant-rate run.
clickhouse_settle() {
    local before after deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        before="$(cpu_ticks "$CH_PID")"
        sleep 1
        after="$(cpu_ticks "$CH_PID")"
        [ $((after - before)) -le $(( $(getconf CLK_TCK) / 10 )) ] && return 0
    done
    log "ClickHouse still busy after 30 s; the constant-rate run shares the CPUs with it"
}

# run_rate LABEL PORT OUT: one constant-rate run of $RATE req/s with the pool the collector's
# wrk warm-up wrote (the same requests); output saved to OUT.
run_rate() {
    local label="$1" port="$2" out="$3"
    log "rate $label: ${duration}s at $RATE req/s, $connections connections -> 127.0.0.1:$port"
    timeout -k 5 $((duration + 60)) "$RATE_BIN" --addr "127.0.0.1:$port" --requests "$TMP/pool" \
        --rate "$RATE" --connections "$connections" --duration "$duration" --threads "$threads" >"$out" 2>&1 &
    RATE_PID=$!
    wait "$RATE_PID" || { cat "$out" >&2; RATE_PID=""; die "rate failed against $label"; }
    RATE_PID=""
    grep -q '^BENCH requests=' "$out" || { cat "$out" >&2; die "rate printed no summary for $label"; }
}

# ---------------------------------------------------------------------------------------
# 1. Tools, build, GeoIP databases.
START=$SECONDS
command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) first"
command -v cc >/dev/null || ensure_apt build-essential
ensure_apt wrk nginx curl
[ -n "$perf" ] && { command -v perf >/dev/null || ensure_apt linux-perf; }
mkdir -p "$RAW"
TMP="$(mktemp -d /tmp/webstats-load.XXXXXX)"

log "cargo build --release --bins --locked"
(cd "$ROOT" && timeout --foreground 3600 cargo build --release --bins --locked)
timeout --foreground 1800 "$ROOT/scripts/geoip.sh"
COLLECTOR_BIN="$ROOT/target/release/collector"
RATE_BIN="$ROOT/target/release/rate"
FLOOR_BIN="$ROOT/target/release/floor"
AGGREGATOR_BIN="$ROOT/target/release/aggregator"

# ---------------------------------------------------------------------------------------
# 2. A private ClickHouse (fresh data directory), the schema, the collector.
"$ROOT/scripts/clickhouse.sh" stop --name "$CH_NAME" >/dev/null 2>&1 || true
rm -rf "$WORK/clickhouse/$CH_NAME"
CH_HTTP_PORT="$(free_port)"
CH_TCP_PORT="$(free_port)"
CH_STARTED=1
"$ROOT/scripts/clickhouse.sh" start --name "$CH_NAME" --http-port "$CH_HTTP_PORT" --tcp-port "$CH_TCP_PORT" >/dev/null
CH_PID="$(cat "$WORK/clickhouse/$CH_NAME/server.pid")"

COLLECTOR_PORT="$(free_port)"
# Production defaults for everything not set here (sink batching, queue, timeouts), so the
# figures describe the shipped configuration. X-Forwarded-For is trusted from loopback: the
# beacons' client addresses (GeoIP, pseudonyms) come from it, as behind a local proxy.
cat >"$TMP/collector.toml" <<EOF
[server]
listen = "127.0.0.1:$COLLECTOR_PORT"
trusted_proxies = ["127.0.0.1/32"]
shutdown_timeout_ms = 10000
worker_threads = $workers

[clickhouse]
url = "http://127.0.0.1:$CH_HTTP_PORT"
user = "bench_ingest"
password_env = "WEBSTATS_CH_PASSWORD_INGEST"
database_prefix = "bench"

[salts]
user = "bench_ingest_meta"
password_env = "WEBSTATS_CH_PASSWORD_INGEST_META"

[sink]
durability = "$durability"

[spool]
dir = "$TMP/spool"

[geoip]
location_db = "$WORK/geoip/country.mmdb"
asn_db = "$WORK/geoip/asn.mmdb"

[[sites]]
id = "bench"
allowed_hosts = ["example.ru", "*.example.ru"]
EOF
cat >"$TMP/aggregator.toml" <<EOF
[clickhouse]
url = "http://127.0.0.1:$CH_HTTP_PORT"
user = "admin"
password_env = "WEBSTATS_CH_PASSWORD_ADMIN"
database_prefix = "bench"
EOF
set -a
# shellcheck disable=SC1091
source "$WORK/clickhouse/$CH_NAME/secrets.env"
set +a
"$AGGREGATOR_BIN" --config "$TMP/aggregator.toml" migrate >"$RAW/migrate.log" 2>&1 \
    || { cat "$RAW/migrate.log" >&2; die "aggregator migrate failed"; }
# The collector runs as the production roles (ingest, ingest_meta).
install_roles "$CH_NAME" bench "$AGGREGATOR_BIN" "$TMP/aggregator.toml"
"$COLLECTOR_BIN" --config "$TMP/collector.toml" --check-config >/dev/null

# The collector's tokio runtime is the default multi-threaded one: one worker thread per CPU
# the process may use (nproc), which is what nginx gets below.
log "starting the collector on 127.0.0.1:$COLLECTOR_PORT"
"$COLLECTOR_BIN" --config "$TMP/collector.toml" >"$RAW/collector.log" 2>&1 &
COLLECTOR_PID=$!
wait_until 30 "collector /readyz 200" collector_ready
REST_RSS_KIB="$(status_kib "$COLLECTOR_PID" VmRSS)"     # GeoIP and bot list loaded, no traffic yet

# ---------------------------------------------------------------------------------------
# 3. nginx: the baseline, as many workers as the collector has threads.
WORKERS="$workers"
NGINX_PORT="$(free_port)"
mkdir -p "$TMP/nginx"
sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@WORKERS@|$WORKERS|g" \
    "$BENCH_DIR/nginx.conf.template" >"$TMP/nginx/nginx.conf"
log "starting nginx on 127.0.0.1:$NGINX_PORT ($WORKERS workers)"
# -e: the error log before the configuration is read (else /var/log/nginx, maybe unwritable).
nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/nginx-error.log" &
NGINX_PID=$!
wait_until 15 "nginx answering 204" nginx_ready

# The floor: the collector's HTTP stack alone, as many worker threads.
FLOOR_PORT="$(free_port)"
log "starting the floor on 127.0.0.1:$FLOOR_PORT ($WORKERS worker threads)"
"$FLOOR_BIN" --listen "127.0.0.1:$FLOOR_PORT" --workers "$WORKERS" >"$RAW/floor.log" 2>&1 &
FLOOR_PID=$!
wait_until 15 "the floor answering 202" floor_ready

# ---------------------------------------------------------------------------------------
# 4-6. Load.
# wrk, the targets and ClickHouse share the CPUs: anything else running skews the figures.
# The load average lags by a minute, so sample the CPUs for a second as well.
LOADAVG_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
read -r b0 t0 < <(machine_ticks)
sleep 1
IDLE_BUSY="$(busy_pct "$b0" "$t0")"
[ "$IDLE_BUSY" -lt 15 ] \
    || log "warning: the CPUs are ${IDLE_BUSY}% busy before the runs: other work is running, figures will be noisy"

# nginx first: after the collector's run ClickHouse goes on merging for a while, which would
# steal CPU from a baseline run after it.
run_wrk "nginx warm-up" "http://127.0.0.1:$NGINX_PORT/api/event" "$warmup" "$RAW/nginx-warmup.txt"
read -r b0 t0 < <(machine_ticks)
ng_cpu0="$(nginx_ticks)" ng_sys0="$(nginx_ticks sys)"
run_wrk "nginx" "http://127.0.0.1:$NGINX_PORT/api/event" "$duration" "$RAW/nginx.txt"
ng_cpu1="$(nginx_ticks)" ng_sys1="$(nginx_ticks sys)"
NGINX_MACHINE_BUSY="$(busy_pct "$b0" "$t0")"
run_wrk "floor warm-up" "http://127.0.0.1:$FLOOR_PORT/api/event" "$warmup" "$RAW/floor-warmup.txt"
read -r b0 t0 < <(machine_ticks)
fl_cpu0="$(cpu_ticks "$FLOOR_PID")" fl_sys0="$(cpu_ticks "$FLOOR_PID" sys)"
run_wrk "floor" "http://127.0.0.1:$FLOOR_PORT/api/event" "$duration" "$RAW/floor.txt"
fl_cpu1="$(cpu_ticks "$FLOOR_PID")" fl_sys1="$(cpu_ticks "$FLOOR_PID" sys)"
FLOOR_MACHINE_BUSY="$(busy_pct "$b0" "$t0")"
stop_pid "$FLOOR_PID" TERM 5
FLOOR_PID=""

# The warm-up also writes wrk's request pool for the constant-rate runs.
WEBSTATS_BEACON_POOL="$TMP/pool" run_wrk "collector warm-up" "http://127.0.0.1:$COLLECTOR_PORT/api/event" "$warmup" "$RAW/collector-warmup.txt"
[ -s "$TMP/pool" ] || die "beacon.lua wrote no request pool"
cpu0="$(cpu_ticks "$COLLECTOR_PID")" sys0="$(cpu_ticks "$COLLECTOR_PID" sys)"
ch_cpu0="$(cpu_ticks "$CH_PID")"
read -r b0 t0 < <(machine_ticks)
if [ -n "$perf" ]; then
    # Flat profile (the release build has no frame pointers, so no call graphs), of the
    # collector only, for as long as the measured run lasts.
    perf record -F 499 --call-graph dwarf,16384 -p "$COLLECTOR_PID" -o "$RAW/perf.data" -- sleep "$duration" >"$RAW/perf-record.log" 2>&1 &
    PERF_PID=$!
fi
run_wrk "collector" "http://127.0.0.1:$COLLECTOR_PORT/api/event" "$duration" "$RAW/collector.txt"
cpu1="$(cpu_ticks "$COLLECTOR_PID")" sys1="$(cpu_ticks "$COLLECTOR_PID" sys)"
ch_cpu1="$(cpu_ticks "$CH_PID")"
COLLECTOR_MACHINE_BUSY="$(busy_pct "$b0" "$t0")"
PEAK_RSS_KIB="$(status_kib "$COLLECTOR_PID" VmHWM)"
RSS_AFTER_KIB="$(status_kib "$COLLECTOR_PID" VmRSS)"
if [ -n "$PERF_PID" ]; then
    wait "$PERF_PID" || log "perf record failed; see $RAW/perf-record.log"
    PERF_PID=""
    perf report -i "$RAW/perf.data" --no-children --sort dso,symbol --percent-limit 0.7 --stdio \
        >"$RAW/perf-symbols.txt" 2>/dev/null || true
    perf report -i "$RAW/perf.data" --no-children --sort comm,dso --stdio \
        >"$RAW/perf-threads.txt" 2>/dev/null || true
    perf report -i "$RAW/perf.data" --children --sort symbol -g none --percent-limit 1 --stdio \
        >"$RAW/perf-callers.txt" 2>/dev/null || true
fi

# Constant rate: nginx first, then the collector, whose CPU is measured again; each after
# ClickHouse has settled from the inserts before it.
RATE="${rate:-$(awk '/^Requests\/sec:/ { printf "%d", $2 / 2 }' "$RAW/collector.txt")}"
[ "$RATE" -gt 0 ] || die "no rate for the constant-rate runs"
clickhouse_settle
run_rate "nginx" "$NGINX_PORT" "$RAW/nginx-rate.txt"
clickhouse_settle
rate_cpu0="$(cpu_ticks "$COLLECTOR_PID")"
run_rate "collector" "$COLLECTOR_PORT" "$RAW/collector-rate.txt"
rate_cpu1="$(cpu_ticks "$COLLECTOR_PID")"

# wrk counts the 2xx answers it read before its deadline; the requests in flight then (at
# most one per connection and run) are answered too but not counted, so the collector's own
# count is the reference for rows, and wrk's must agree with it within that margin.
# rate waits for every answer, so its count is exact.
ACCEPTED_WRK=$(( $(ok_count "$RAW/collector-warmup.txt") + $(ok_count "$RAW/collector.txt") + $(value "$RAW/collector-rate.txt" ok) ))
IN_FLIGHT_MAX=$((2 * connections))
WAIT_START=$SECONDS
sleep 1   # let the last in-flight requests finish
# metric NAME: the sum over all label sets of a counter in the scraped /metrics.
metric() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d", s }' "$RAW/metrics.txt"; }
curl -sS --fail --max-time 5 "http://127.0.0.1:$COLLECTOR_PORT/metrics" >"$RAW/metrics.txt"
M_ACCEPTED="$(metric webstats_collector_beacons_accepted_total)"

# Rows: the sink flushes at least every second; wait until every accepted beacon has its
# troubleshooting row (each beacon of this load gets one) or the count stops moving.
deadline=$((SECONDS + 30)) rows=0 last=-1 still=0
sleep 1
while :; do
    rows="$(ch_query 'SELECT count() FROM bench_troubleshooting.events')"
    [ "$rows" -ge "$M_ACCEPTED" ] && break
    if [ "$rows" = "$last" ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 10 ] && break         # 5 s without a new row
    [ $SECONDS -lt $deadline ] || break
    last="$rows"
    sleep 0.5
done
ROWS_WAIT=$((SECONDS - WAIT_START))
ROWS_T="$rows"
ROWS_A="$(ch_query 'SELECT count() FROM bench_audience.events')"
# Again, for the sink's counters after the flush.
curl -sS --fail --max-time 5 "http://127.0.0.1:$COLLECTOR_PORT/metrics" >"$RAW/metrics.txt"
M_ACCEPTED="$(metric webstats_collector_beacons_accepted_total)"
M_REJECTED="$(metric webstats_collector_beacons_rejected_total)"
M_BOTS="$(metric webstats_collector_bot_hits_total)"

# ---------------------------------------------------------------------------------------
# 7. Figures and the report.
N="$RAW/nginx.txt" C="$RAW/collector.txt" F="$RAW/floor.txt"
N_RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$N")"
F_RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$F")"
C_RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$C")"
C_OK="$(ok_count "$C")"
CLK_TCK="$(getconf CLK_TCK)"
seconds() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }      # ticks -> s
per_event() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f", n ? s * 1e6 / n : 0 }'; }  # s, n -> µs
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }'; }           # A / B in %
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }         # A / B
CPU_S="$(seconds $((cpu1 - cpu0)))"
CPU_US_EVENT="$(per_event "$CPU_S" "$C_OK")"
CH_CPU_S="$(seconds $((ch_cpu1 - ch_cpu0)))"
CH_CPU_US_EVENT="$(per_event "$CH_CPU_S" "$C_OK")"
NG_CPU_S="$(seconds $((ng_cpu1 - ng_cpu0)))"
NG_CPU_US_REQ="$(per_event "$NG_CPU_S" "$(ok_count "$N")")"
FL_CPU_S="$(seconds $((fl_cpu1 - fl_cpu0)))"
FL_CPU_US_REQ="$(per_event "$FL_CPU_S" "$(ok_count "$F")")"
FL_CPU_RATIO="$(ratio "$FL_CPU_US_REQ" "$NG_CPU_US_REQ")"
CR="$RAW/collector-rate.txt" NR_="$RAW/nginx-rate.txt"
RATE_CPU_US_EVENT="$(per_event "$(seconds $((rate_cpu1 - rate_cpu0)))" "$(value "$CR" ok)")"
RATIO="$(ratio "$C_RPS" "$N_RPS")"
CPU_RATIO="$(ratio "$CPU_US_EVENT" "$NG_CPU_US_REQ")"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
fmt_rps() { awk -v r="$1" 'BEGIN { printf "%.0f", r }'; }
socket_errors() {
    echo $(( $(value "$1" errors_connect) + $(value "$1" errors_read) + $(value "$1" errors_write) + $(value "$1" errors_timeout) ))
}
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT+uncommitted changes"

checks=() failed=""
check() {  # check OK? TEXT
    if [ "$1" = 1 ]; then checks+=("- ok: $2"); else checks+=("- **FAILED**: $2"); failed=1; fi
}
check "$([ "$(non_2xx "$C")" -eq 0 ] && [ "$(non_2xx "$RAW/collector-warmup.txt")" -eq 0 ] && echo 1)" \
    "the collector answered 2xx to every request (non-2xx: warm-up $(non_2xx "$RAW/collector-warmup.txt"), measured $(non_2xx "$C"))"
check "$([ "$(socket_errors "$C")" -eq 0 ] && echo 1)" \
    "no socket errors or timeouts against the collector ($(socket_errors "$C"))"
check "$([ "$(non_2xx "$CR")" -eq 0 ] && [ "$(socket_errors "$CR")" -eq 0 ] && [ "$(value "$CR" unsent)" -eq 0 ] && echo 1)" \
    "at the constant rate, the collector answered 2xx to every request (non-2xx $(non_2xx "$CR"), socket errors $(socket_errors "$CR"), never sent $(value "$CR" unsent))"
# In fsync mode a beacon is written before its 202 is sent; when wrk stops, it closes
# connections whose beacons are on disk but never answered, so rows may exceed accepted by up
# to one request per connection (those senders would retry). In buffered mode they are equal.
extra_rows=$((ROWS_T - M_ACCEPTED))
check "$([ "$extra_rows" -eq 0 ] || { [ "$durability" = fsync ] && [ "$extra_rows" -gt 0 ] && [ "$extra_rows" -le "$connections" ]; } && echo 1)" \
    "every accepted beacon reached ClickHouse: $ROWS_T rows in bench_troubleshooting.events, $M_ACCEPTED accepted (/metrics), ${ROWS_WAIT}s after the run"
check "$([ "$M_ACCEPTED" -ge "$ACCEPTED_WRK" ] && [ "$M_ACCEPTED" -le $((ACCEPTED_WRK + IN_FLIGHT_MAX)) ] && echo 1)" \
    "the 2xx count of wrk (warm-up + measured) and rate ($ACCEPTED_WRK) matches beacons_accepted_total ($M_ACCEPTED) up to the requests in flight when wrk stopped (0 to $IN_FLIGHT_MAX)"
check "$([ "$M_REJECTED" -eq 0 ] && echo 1)" "beacons_rejected_total is 0 ($M_REJECTED)"

{
    echo "## webstats load benchmark, $STAMP"
    echo
    echo "- commit $COMMIT; $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)); before the runs: CPUs ${IDLE_BUSY}% busy, load average $LOADAVG_BEFORE"
    echo "- wrk $threads threads, $connections connections, ${duration}s measured after a ${warmup}s warm-up per target; loopback; benches/beacon.lua"
    echo "- collector: release build, $WORKERS tokio worker threads ($(nproc) CPUs), ClickHouse $(ch_query 'SELECT version()') on the same machine; nginx $(nginx -v 2>&1 | cut -d/ -f2), $WORKERS workers, \`return 204\`"
    echo
    echo "| target | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | peak RSS MiB | CPU µs/event | rows in ClickHouse / accepted |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| nginx \`return 204\` (baseline) | $(fmt_rps "$N_RPS") | $(ms "$(value "$N" p50_us)") | $(ms "$(value "$N" p99_us)") | $(ms "$(value "$N" p999_us)") | $(non_2xx "$N") | – | – | – |"
    echo "| floor: the collector's hyper set-up, \`202\` | $(fmt_rps "$F_RPS") | $(ms "$(value "$F" p50_us)") | $(ms "$(value "$F" p99_us)") | $(ms "$(value "$F" p999_us)") | $(non_2xx "$F") | – | $FL_CPU_US_REQ | – |"
    echo "| collector ($durability) → ClickHouse | $(fmt_rps "$C_RPS") | $(ms "$(value "$C" p50_us)") | $(ms "$(value "$C" p99_us)") | $(ms "$(value "$C" p999_us)") | $(non_2xx "$C") | $(mib "$PEAK_RSS_KIB") | $CPU_US_EVENT | $ROWS_T / $M_ACCEPTED |"
    echo "| nginx, constant $RATE req/s | $(fmt_rps "$(value "$NR_" rate_achieved)") | $(ms "$(value "$NR_" p50_us)") | $(ms "$(value "$NR_" p99_us)") | $(ms "$(value "$NR_" p999_us)") | $(non_2xx "$NR_") | – | – | – |"
    echo "| collector, constant $RATE req/s | $(fmt_rps "$(value "$CR" rate_achieved)") | $(ms "$(value "$CR" p50_us)") | $(ms "$(value "$CR" p99_us)") | $(ms "$(value "$CR" p999_us)") | $(non_2xx "$CR") | (above) | $RATE_CPU_US_EVENT | (above) |"
    echo
    echo "collector/nginx throughput: **$RATIO** (floor/nginx $(ratio "$F_RPS" "$N_RPS")); CPU per event: **${CPU_RATIO}x** nginx's per request (floor ${FL_CPU_RATIO}x); peak RSS: **$(mib "$PEAK_RSS_KIB") MiB**; p99 at a constant $RATE req/s: **$(ms "$(value "$CR" p99_us)") ms** (nginx $(ms "$(value "$NR_" p99_us)") ms)"
    echo
    echo "Details:"
    echo "- latency p75 / p90 / max, ms: nginx $(ms "$(value "$N" p75_us)") / $(ms "$(value "$N" p90_us)") / $(ms "$(value "$N" max_us)"); collector $(ms "$(value "$C" p75_us)") / $(ms "$(value "$C" p90_us)") / $(ms "$(value "$C" max_us)")"
    echo "- requests in the measured run: nginx $(value "$N" requests), floor $(value "$F" requests), collector $(value "$C" requests); socket errors: nginx $(socket_errors "$N"), collector $(socket_errors "$C")"
    echo "- CPU during the measured runs: collector ${CPU_S} s (${CPU_US_EVENT} µs/event), ClickHouse ${CH_CPU_S} s (${CH_CPU_US_EVENT} µs/event); nginx ${NG_CPU_S} s (${NG_CPU_US_REQ} µs/request); floor ${FL_CPU_S} s (${FL_CPU_US_REQ} µs/request)"
    echo "- of which in the kernel (stime): nginx $(pct $((ng_sys1 - ng_sys0)) $((ng_cpu1 - ng_cpu0)))%, floor $(pct $((fl_sys1 - fl_sys0)) $((fl_cpu1 - fl_cpu0)))%, collector $(pct $((sys1 - sys0)) $((cpu1 - cpu0)))%"
    echo "- machine CPU busy during the measured run (all processes, wrk included): nginx run ${NGINX_MACHINE_BUSY}%, floor run ${FLOOR_MACHINE_BUSY}%, collector run ${COLLECTOR_MACHINE_BUSY}%"
    echo "- collector RSS: at rest before the load $(mib "$REST_RSS_KIB") MiB, peak $(mib "$PEAK_RSS_KIB") MiB, after the run $(mib "$RSS_AFTER_KIB") MiB"
    echo "- rows: troubleshooting $ROWS_T, audience $ROWS_A (crawlers are kept out of it); /metrics: accepted $M_ACCEPTED, rejected $M_REJECTED, bot hits $M_BOTS"
    echo "- wrk (warm-up + measured) and rate counted $ACCEPTED_WRK 2xx; the collector accepted $((M_ACCEPTED - ACCEPTED_WRK)) more: requests in flight when wrk stopped, which wrk does not count"
    echo "- constant-rate runs (benches/rate): ${duration}s, $connections connections; sends the generator itself made more than 1 ms late: nginx $(value "$NR_" late_sends), collector $(value "$CR" late_sends) of $(value "$CR" requests); counting every request from when it was due, late sends included (wrk2's measure), p99 / p99.9 ms: nginx $(ms "$(value "$NR_" from_due_p99_us)") / $(ms "$(value "$NR_" from_due_p999_us)"), collector $(ms "$(value "$CR" from_due_p99_us)") / $(ms "$(value "$CR" from_due_p999_us)")"
    echo "- raw wrk output, collector log, /metrics: \`.work/bench/load-$STAMP/\`"
    echo "- whole script until this report: $((SECONDS - START)) s"
    echo
    echo "Checks:"
    printf '%s\n' "${checks[@]}"
} >"$REPORT"
# The key figures, for --repeat's summary.
{
    echo "throughput_ratio=$RATIO"
    echo "cpu_ratio=$CPU_RATIO"
    echo "floor_cpu_ratio=$FL_CPU_RATIO"
    echo "collector_us=$CPU_US_EVENT"
    echo "floor_us=$FL_CPU_US_REQ"
    echo "nginx_us=$NG_CPU_US_REQ"
    echo "clickhouse_us=$CH_CPU_US_EVENT"
    echo "peak_rss_mib=$(mib "$PEAK_RSS_KIB")"
    echo "rate_p99_ms=$(ms "$(value "$CR" p99_us)")"
    echo "nginx_rate_p99_ms=$(ms "$(value "$NR_" p99_us)")"
} >"$RAW/figures.txt"
cat "$REPORT"
log "report: $REPORT"
[ -z "$failed" ] || exit 1
