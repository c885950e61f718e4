#!/usr/bin/env bash
# Run a local ClickHouse server for tests and the demo, with config/clickhouse/ and its own
# data directory .work/clickhouse/NAME/data (logs in .work/clickhouse/NAME/log).
#
# usage: clickhouse.sh start|stop|kill|status|wait [--name NAME] [--http-port P] [--tcp-port P]
#                      [--interserver-port P]
#   start   install clickhouse-server if missing, start it in the background, wait until it
#           answers; prints the data directory on stdout. A no-op if already running. Files in
#           .work/clickhouse/NAME/config.d/ are merged over config/clickhouse/config.xml (a
#           cluster node's, written by scripts/cluster.sh).
#   stop    SIGTERM, then SIGKILL after 30 s. A no-op if not running.
#   kill    SIGKILL at once (fault tests).
#   status  prints "running pid=... http=... tcp=... dir=..." (exit 0) or "stopped" (exit 1).
#   wait    waits up to 60 s until `SELECT 1` answers over HTTP.
# Defaults: NAME=default, HTTP port 18123, TCP port 19000. Different names can run side by
# side on different ports. The admin password is in .work/clickhouse/NAME/secrets.env; role
# users of installations go in .work/clickhouse/NAME/users.d/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default http_port="" tcp_port="" interserver_port=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --http-port) http_port="$2"; shift 2 ;;
        --tcp-port) tcp_port="$2"; shift 2 ;;
        --interserver-port) interserver_port="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

DIR="$WORK/clickhouse/$name"
PIDFILE="$DIR/server.pid"
PORTFILE="$DIR/ports"  # "HTTP TCP [INTERSERVER]" of the server, so later calls need no flags
START_TIMEOUT=60
STOP_TIMEOUT=30

# Ports: flags win, then those the server was started with, then the defaults.
if [ -f "$PORTFILE" ]; then read -r saved_http saved_tcp saved_interserver < "$PORTFILE"; fi
http_port="${http_port:-${saved_http:-18123}}"
tcp_port="${tcp_port:-${saved_tcp:-19000}}"
interserver_port="${interserver_port:-${saved_interserver:-}}"

# What the server's command line holds, so that a stale pid file cannot name another process.
MARKER="--path=$DIR/data/"
running_pid() { pid_of "$PIDFILE" "$MARKER"; }

# secrets: $DIR/secrets.env holds the admin password (created once, mode 600); the users file
# the server reads is the template with that password's hash.
SECRETS="$DIR/secrets.env"
ensure_secrets() {
    mkdir -p "$DIR/users.d"
    if [ ! -s "$SECRETS" ]; then
        (umask 077; printf 'WEBSTATS_CH_PASSWORD_ADMIN=%s\n' "$(random_secret)" > "$SECRETS")
    fi
    # shellcheck disable=SC1090
    source "$SECRETS"
    local hash
    hash="$(printf '%s' "$WEBSTATS_CH_PASSWORD_ADMIN" | sha256sum | cut -d' ' -f1)"
    sed "s/@ADMIN_PASSWORD_SHA256@/$hash/" "$ROOT/config/clickhouse/users.xml" > "$DIR/users.xml"
}

answers() {
    # shellcheck disable=SC1090
    [ -f "$SECRETS" ] && source "$SECRETS"
    python3 - "$1" "${WEBSTATS_CH_PASSWORD_ADMIN:-}" <<'EOF' 2>/dev/null
import sys, urllib.request
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/?query=SELECT%201",
    headers={"X-ClickHouse-User": "admin", "X-ClickHouse-Key": sys.argv[2]})
sys.exit(0 if urllib.request.urlopen(request, timeout=2).read().strip() == b"1" else 1)
EOF
}

show_logs() {
    log "server did not come up; last lines of its logs in $DIR/log:"
    tail -n 40 "$DIR/log/err.log" "$DIR/log/stdout.log" >&2 2>/dev/null || true
}

wait_ready() {
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$http_port"; do
        if [ -f "$PIDFILE" ] && ! running_pid >/dev/null; then
            log "server exited"
            show_logs
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "no answer on port $http_port after ${START_TIMEOUT}s"
            show_logs
            return 1
        fi
        sleep 0.3
    done
}

server_binary() {
    command -v clickhouse-server || { [ -x /usr/sbin/clickhouse-server ] && echo /usr/sbin/clickhouse-server; }
}

start() {
    if running_pid >/dev/null; then
        log "already running ($(status))"
        wait_ready
        echo "$DIR/data"
        return
    fi
    server_binary >/dev/null || ensure_apt clickhouse-server clickhouse-client
    local bin port
    bin="$(server_binary)" || die "clickhouse-server not found after installing it"
    # Checked up front: otherwise another server on the port could answer wait_ready for us.
    for port in "$http_port" "$tcp_port" $interserver_port; do
        port_free "$port" || die "port $port is in use (another server? see --name, --http-port, --tcp-port)"
    done
    mkdir -p "$DIR/data/tmp" "$DIR/data/user_files" "$DIR/data/format_schemas" "$DIR/log"
    ensure_secrets
    log "starting ClickHouse: http=$http_port tcp=$tcp_port${interserver_port:+ interserver=$interserver_port} dir=$DIR"
    # Everything per-run is overridden here, so one config file serves every data directory. A
    # copy in the run directory, so that the server merges that directory's config.d/.
    cp "$ROOT/config/clickhouse/config.xml" "$DIR/config.xml"
    local extra=()
    [ -n "$interserver_port" ] && extra+=(--interserver_http_port="$interserver_port")
    nohup "$bin" --config-file="$DIR/config.xml" -- \
        --path="$DIR/data/" --tmp_path="$DIR/data/tmp/" \
        --user_files_path="$DIR/data/user_files/" \
        --format_schema_path="$DIR/data/format_schemas/" \
        --logger.log="$DIR/log/server.log" --logger.errorlog="$DIR/log/err.log" \
        --http_port="$http_port" --tcp_port="$tcp_port" --users_config="$DIR/users.xml" "${extra[@]}" \
        </dev/null >"$DIR/log/stdout.log" 2>&1 &
    echo $! > "$PIDFILE"
    echo "$http_port $tcp_port $interserver_port" > "$PORTFILE"
    wait_ready || { stop; exit 1; }
    echo "$DIR/data"
}

stop() { stop_pidfile "$PIDFILE" "$MARKER" "$STOP_TIMEOUT"; }

kill_now() { kill_pidfile "$PIDFILE" "$MARKER"; }

status() { pidfile_status "$PIDFILE" "$MARKER" "http=$http_port tcp=$tcp_port dir=$DIR"; }

case "$cmd" in
    start) start ;;
    stop) stop ;;
    kill) kill_now ;;
    status) status ;;
    wait) wait_ready ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
