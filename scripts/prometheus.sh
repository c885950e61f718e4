#!/usr/bin/env bash
# Run Debian's Prometheus on loopback, scraping collectors, with config/prometheus.yml and a
# data directory of its own, .work/prometheus/NAME/.
#
# usage: prometheus.sh start|stop [--name NAME] [--port P] [--targets HOST:PORT[,HOST:PORT...]]
#                      [--scrape-interval DURATION]
#   start   install prometheus if missing, render the config, start it in the background and
#           wait until it is ready (/-/ready). A no-op if already running.
#   stop    SIGTERM, then SIGKILL after 15 s. A no-op if not running.
# Defaults: NAME=default, port 19090, targets 127.0.0.1:18080 (scripts/run.sh's collector),
# scrape interval 15s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default port=19090 targets=127.0.0.1:18080 interval=15s
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --targets) targets="$2"; shift 2 ;;
        --scrape-interval) interval="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

DIR="$WORK/prometheus/$name"
PIDFILE="$DIR/prometheus.pid"

# What the server's command line holds, so that a stale pid file cannot name another process.
MARKER="--storage.tsdb.path=$DIR/data"
running_pid() { pid_of "$PIDFILE" "$MARKER"; }

start() {
    if running_pid >/dev/null; then
        log "already running"
        return
    fi
    command -v prometheus >/dev/null || ensure_apt prometheus
    port_free "$port" || die "port $port is in use"
    mkdir -p "$DIR/data"
    local quoted
    quoted="$(printf "'%s'," ${targets//,/ })"
    sed -e "s|@SCRAPE_INTERVAL@|$interval|g" -e "s|@TARGETS@|${quoted%,}|" -e "s|@ROOT@|$ROOT|" \
        "$ROOT/config/prometheus.yml" > "$DIR/prometheus.yml"
    log "starting Prometheus on 127.0.0.1:$port, scraping $targets every $interval"
    nohup prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
        --storage.tsdb.retention.time=15d --web.listen-address="127.0.0.1:$port" \
        </dev/null >"$DIR/prometheus.log" 2>&1 &
    echo $! > "$PIDFILE"
    local deadline=$((SECONDS + 30))
    until curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; do
        if ! running_pid >/dev/null; then
            tail -n 20 "$DIR/prometheus.log" >&2
            die "prometheus exited"
        fi
        [ $SECONDS -lt $deadline ] || die "prometheus not ready after 30 s"
        sleep 0.2
    done
}

stop() { stop_pidfile "$PIDFILE" "$MARKER" 15; }

case "$cmd" in
    start) start ;;
    stop) stop ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
