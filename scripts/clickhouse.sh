#!/usr/bin/env bash
# Run a local ClickHouse server for tests and the demo, with config/clickhouse/ and its own
# data directory .work/clickhouse/NAME/data (logs in .work/clickhouse/NAME/log).
#
# usage: clickhouse.sh start|stop|status|wait [--name NAME] [--http-port P] [--tcp-port P]
#   start   install clickhouse-server if missing, start it in the background, wait until it
#           answers; prints the data directory on stdout. A no-op if already running.
#   stop    SIGTERM, then SIGKILL after 30 s. A no-op if not running.
#   status  prints "running pid=... http=... tcp=... dir=..." (exit 0) or "stopped" (exit 1).
#   wait    waits up to 60 s until `SELECT 1` answers over HTTP.
# Defaults: NAME=default, HTTP port 18123, TCP port 19000. Different names can run side by
# side on different ports. The admin password is in .work/clickhouse/NAME/secrets.env; role
# users of installations go in .work/clickhouse/NAME/users.d/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default http_port="" tcp_port=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --http-port) http_port="$2"; shift 2 ;;
        --tcp-port) tcp_port="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

DIR="$WORK/clickhouse/$name"
PIDFILE="$DIR/server.pid"
PORTFILE="$DIR/ports"  # "HTTP TCP" of the running server, so wait/status need no flags
START_TIMEOUT=60
STOP_TIMEOUT=30

# Ports: flags win, then those the server was started with, then the defaults.
if [ -f "$PORTFILE" ]; then read -r saved_http saved_tcp < "$PORTFILE"; fi
http_port="${http_port:-${saved_http:-18123}}"
tcp_port="${tcp_port:-${saved_tcp:-19000}}"

# running_pid: print the server's pid if it runs on this data directory. The cmdline check
# guards against a stale pid file whose pid now belongs to another process.
running_pid() { pid_of "$PIDFILE" "--path=$DIR/data/"; }

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
    for port in "$http_port" "$tcp_port"; do
        port_free "$port" || die "port $port is in use (another server? see --name, --http-port, --tcp-port)"
    done
    mkdir -p "$DIR/data/tmp" "$DIR/data/user_files" "$DIR/data/format_schemas" "$DIR/log"
    ensure_secrets
    log "starting ClickHouse: http=$http_port tcp=$tcp_port dir=$DIR"
    # Everything per-run is overridden here, so one config file serves every data directory.
    nohup "$bin" --config-file="$ROOT/config/clickhouse/config.xml" -- \
        --path="$DIR/data/" --tmp_path="$DIR/data/tmp/" \
        --user_files_path="$DIR/data/user_files/" \
        --format_schema_path="$DIR/data/format_schemas/" \
        --logger.log="$DIR/log/server.log" --logger.errorlog="$DIR/log/err.log" \
        --http_port="$http_port" --tcp_port="$tcp_port" --users_config="$DIR/users.xml" \
        </dev/null >"$DIR/log/stdout.log" 2>&1 &
    echo $! > "$PIDFILE"
    echo "$http_port $tcp_port" > "$PORTFILE"
    wait_ready || { stop; exit 1; }
    echo "$DIR/data"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    stop_process "$pid" "$STOP_TIMEOUT"
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running pid=$pid http=$http_port tcp=$tcp_port dir=$DIR"
    else
        echo "stopped"
        return 1
    fi
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    wait) wait_ready ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
