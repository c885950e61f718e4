# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it sets no shell options of its own.
#   ROOT  repository root (found from this file's location, so any cwd and any clone path work)
#   WORK  $ROOT/.work: all runtime state (gitignored)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.work"
VENV="$WORK/venv"
export ROOT WORK VENV

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# force_option LAST ARGS...: the one option of the scripts that fetch data. -h/--help prints
# the script's header comment (lines 2 to LAST) and exits; --force sets $force to 1.
force_option() {
    local last="$1"
    shift
    usage() { sed -n "2,${last}s/^# \{0,1\}//p" "$0"; echo "usage: $0 [--force]"; }
    force=""
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
        --force) force=1 ;;
        "") ;;
        *) usage >&2; exit 2 ;;
    esac
}

_APT_UPDATED=""
# ensure_apt PKG...: install the Debian packages that are missing; `apt-get update` at most once
# per run, and only when something has to be installed.
ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "$_APT_UPDATED" ]; then
        log "apt-get update"
        $sudo apt-get update -qq >&2
        _APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# ensure_venv: $VENV with scripts/requirements.txt installed. A stamp holding a copy of the
# requirements makes this a no-op until the file changes.
ensure_venv() {
    local req="$ROOT/scripts/requirements.txt" stamp="$VENV/.requirements.installed"
    # bin/pip appears only once venv creation has fully succeeded; otherwise start over.
    if [ ! -x "$VENV/bin/pip" ]; then
        command -v python3 >/dev/null || ensure_apt python3
        # Debian's python3 lacks ensurepip (so `-m venv` fails) until python3-venv is installed.
        python3 -c 'import ensurepip, venv' 2>/dev/null || ensure_apt python3-venv
        log "creating venv $VENV"
        mkdir -p "$WORK"
        python3 -m venv --clear "$VENV" >&2
    fi
    if ! cmp -s "$req" "$stamp"; then
        log "pip install -r scripts/requirements.txt"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
        cp "$req" "$stamp"
    fi
}

# ensure_python: python3 (the port helpers and the demo page server use it).
ensure_python() {
    command -v python3 >/dev/null || ensure_apt python3
}

# random_secret: 32 random URL-safe characters, for generated passwords.
random_secret() {
    python3 -c 'import secrets; print(secrets.token_urlsafe(24))'
}

# install_roles CH_NAME PREFIX AGGREGATOR_BIN AGGREGATOR_CONFIG: the role users of one
# installation on the local server CH_NAME. Passwords are generated once into
# .work/clickhouse/CH_NAME/roles-PREFIX.env and exported (with the admin password) for the
# binaries; `aggregator roles` writes the users.d file, and this waits until the server has
# loaded it.
install_roles() {
    local dir="$WORK/clickhouse/$1" prefix="$2" aggregator="$3" config="$4" role
    command -v curl >/dev/null || ensure_apt curl
    local env="$dir/roles-$prefix.env"
    if [ ! -s "$env" ]; then
        (umask 077; for role in INGEST INGEST_META ANALYST SRE; do
            printf 'WEBSTATS_CH_PASSWORD_%s=%s\n' "$role" "$(random_secret)"; done > "$env")
    fi
    set -a
    # shellcheck disable=SC1090
    source "$dir/secrets.env"
    # shellcheck disable=SC1090
    source "$env"
    set +a
    "$aggregator" --config "$config" roles > "$dir/users.d/$prefix.tmp"
    mv "$dir/users.d/$prefix.tmp" "$dir/users.d/$prefix.xml"
    local port deadline=$((SECONDS + 30))
    read -r port _ < "$dir/ports"
    until curl -sf -H "X-ClickHouse-User: ${prefix}_ingest" -H "X-ClickHouse-Key: $WEBSTATS_CH_PASSWORD_INGEST" \
            "http://127.0.0.1:$port/?query=SELECT%201" >/dev/null; do
        [ $SECONDS -lt $deadline ] || die "ClickHouse did not load the roles of $prefix"
        sleep 0.2
    done
}

# pid_of PIDFILE MARKER: print the pid in PIDFILE if that process runs and its command line
# holds MARKER (its data directory, say): a stale pid file's pid may belong to another process.
pid_of() {
    local pid
    [ -f "$1" ] || return 1
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    echo "$pid"
}

# stop_process PID SECONDS: SIGTERM, then SIGKILL if it has not exited after SECONDS.
stop_process() {
    local pid="$1" deadline=$((SECONDS + $2))
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "no exit after ${2}s, killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# stop_pidfile PIDFILE MARKER SECONDS: stop the server PIDFILE names (see pid_of) with
# stop_process, if it runs, and remove PIDFILE.
stop_pidfile() {
    local pid
    if pid="$(pid_of "$1" "$2")"; then
        stop_process "$pid" "$3"
        log "stopped"
    else
        log "not running"
    fi
    rm -f "$1"
}

# pidfile_status PIDFILE MARKER DETAILS: print "running pid=PID DETAILS" (exit 0) or "stopped"
# (exit 1).
pidfile_status() {
    local pid
    pid="$(pid_of "$1" "$2")" || { echo "stopped"; return 1; }
    echo "running pid=$pid $3"
}

# kill_pidfile PIDFILE MARKER: SIGKILL the server PIDFILE names, if it runs, wait until it is
# gone (fault tests), and remove PIDFILE.
kill_pidfile() {
    local pid
    if pid="$(pid_of "$1" "$2")"; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$1"
}

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_free PORT: succeed if nothing listens on 127.0.0.1:PORT. SO_REUSEADDR, as servers set
# it, so that connections of a just-stopped server in TIME_WAIT don't count.
port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "lib.sh is sourced by the other scripts: source scripts/lib.sh; then use"
    echo "  \$ROOT \$WORK \$VENV, log MSG, die MSG, ensure_apt PKG..., ensure_venv, ensure_python, random_secret,"
    echo "  install_roles CH_NAME PREFIX AGGREGATOR CONFIG, pid_of PIDFILE MARKER, stop_process PID SECONDS,"
    echo "  stop_pidfile PIDFILE MARKER SECONDS, kill_pidfile PIDFILE MARKER, pidfile_status PIDFILE MARKER DETAILS,"
    echo "  free_port, port_free PORT"
    exit 0
fi
