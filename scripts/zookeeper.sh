#!/usr/bin/env bash
# Run Debian's ZooKeeper on loopback for a ClickHouse cluster, with config/zookeeper/zoo.cfg and
# a data directory of its own, .work/zookeeper/NAME/ (log in .work/zookeeper/NAME/zookeeper.log).
# The server runs from its jar in the foreground of its own process (no init script, no
# systemd), so the scripts and tests can stop and kill it.
#
# usage: zookeeper.sh start|stop|kill|status [--name NAME] [--port P]
#   start   install zookeeper if missing, start it in the background, wait until it answers
#           `srvr`. A no-op if already running.
#   stop    SIGTERM, then SIGKILL after 15 s. A no-op if not running.
#   kill    SIGKILL at once (fault tests).
#   status  prints "running pid=... port=... dir=..." (exit 0) or "stopped" (exit 1).
# Defaults: NAME=default, port 12181 (or the one it last ran on).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default port=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

DIR="$WORK/zookeeper/$name"
PIDFILE="$DIR/zookeeper.pid"
PORTFILE="$DIR/port"
[ -f "$PORTFILE" ] && saved_port="$(cat "$PORTFILE")"
port="${port:-${saved_port:-12181}}"
START_TIMEOUT=60
# Debian's package: the server jar (its manifest lists its libraries) and slf4j-simple, so
# that the server's log lines reach the log file instead of slf4j's no-op logger.
CLASSPATH="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"

# What the server's command line holds, so that a stale pid file cannot name another process.
MARKER="$DIR/zoo.cfg"
running_pid() { pid_of "$PIDFILE" "$MARKER"; }

# answers PORT: the server replies to the `srvr` four-letter word.
answers() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    s.sendall(b"srvr")
    sys.exit(0 if s.recv(200).startswith(b"Zookeeper version") else 1)
PY
}

start() {
    if running_pid >/dev/null; then
        log "already running ($(status))"
        return
    fi
    [ -f /usr/share/java/zookeeper.jar ] || ensure_apt zookeeper
    command -v java >/dev/null || ensure_apt default-jre-headless
    port_free "$port" || die "port $port is in use (another server? see --name, --port)"
    mkdir -p "$DIR/data"
    sed -e "s|@DATA_DIR@|$DIR/data|" -e "s|@PORT@|$port|" "$ROOT/config/zookeeper/zoo.cfg" > "$DIR/zoo.cfg"
    log "starting ZooKeeper on 127.0.0.1:$port, dir=$DIR"
    nohup java -Xmx256m -Dzookeeper.jmx.log4j.disable=true -cp "$CLASSPATH" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$DIR/zoo.cfg" \
        </dev/null >>"$DIR/zookeeper.log" 2>&1 &
    echo $! > "$PIDFILE"
    echo "$port" > "$PORTFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$port"; do
        if ! running_pid >/dev/null; then
            tail -n 20 "$DIR/zookeeper.log" >&2
            die "zookeeper exited"
        fi
        [ $SECONDS -lt $deadline ] || { tail -n 20 "$DIR/zookeeper.log" >&2; die "zookeeper not answering after ${START_TIMEOUT}s"; }
        sleep 0.2
    done
}

stop() { stop_pidfile "$PIDFILE" "$MARKER" 15; }

kill_now() { kill_pidfile "$PIDFILE" "$MARKER"; }

status() { pidfile_status "$PIDFILE" "$MARKER" "port=$port dir=$DIR"; }

case "$cmd" in
    start) start ;;
    stop) stop ;;
    kill) kill_now ;;
    status) status ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
