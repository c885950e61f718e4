#!/usr/bin/env bash
# Run Debian's HAProxy on loopback in front of collectors, with config/haproxy/haproxy.cfg and a
# directory of its own, .work/haproxy/NAME/ (the rendered config, the pid file, its output).
# HAProxy runs in the foreground of its own process (no init script, no systemd).
#
# usage: haproxy.sh start|stop|status [--name NAME] [--port P] [--backends HOST:PORT[,...]]
#   start   install haproxy if missing, render the config, start it in the background and wait
#           until it accepts connections. A no-op if already running.
#   stop    SIGTERM (HAProxy stops at once), SIGKILL after 15 s. A no-op if not running.
#   status  prints "running pid=... port=..." (exit 0) or "stopped" (exit 1).
# Defaults: NAME=default, port 18081, backends 127.0.0.1:18080 (scripts/run.sh's collector).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default port=18081 backends=127.0.0.1:18080
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --backends) backends="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

DIR="$WORK/haproxy/$name"
PIDFILE="$DIR/haproxy.pid"
CONFIG="$DIR/haproxy.cfg"
# What the server's command line holds, so that a stale pid file cannot name another process.
MARKER="$CONFIG"
running_pid() { pid_of "$PIDFILE" "$MARKER"; }

start() {
    if running_pid >/dev/null; then
        log "already running ($(status))"
        return
    fi
    command -v haproxy >/dev/null || ensure_apt haproxy
    port_free "$port" || die "port $port is in use"
    mkdir -p "$DIR"
    local i=0 servers="" backend
    for backend in ${backends//,/ }; do
        i=$((i + 1))
        servers+="    server collector$i $backend check"$'\n'
    done
    [ -n "$servers" ] || die "--backends is empty"
    awk -v servers="${servers%$'\n'}" -v port="$port" \
        '{ gsub(/@PORT@/, port) } /^@SERVERS@$/ { print servers; next } { print }' \
        "$ROOT/config/haproxy/haproxy.cfg" > "$CONFIG"
    haproxy -c -q -f "$CONFIG" || die "haproxy refused $CONFIG"
    log "starting HAProxy on 127.0.0.1:$port in front of $backends"
    nohup haproxy -db -f "$CONFIG" </dev/null >"$DIR/haproxy.log" 2>&1 &
    echo $! > "$PIDFILE"
    local deadline=$((SECONDS + 15))
    until ! port_free "$port"; do
        if ! running_pid >/dev/null; then
            tail -n 20 "$DIR/haproxy.log" >&2
            die "haproxy exited"
        fi
        [ $SECONDS -lt $deadline ] || die "haproxy not listening after 15 s"
        sleep 0.1
    done
    echo "$port" > "$DIR/port"
}

stop() { stop_pidfile "$PIDFILE" "$MARKER" 15; }

status() { pidfile_status "$PIDFILE" "$MARKER" "port=$(cat "$DIR/port" 2>/dev/null || echo "$port") dir=$DIR"; }

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
