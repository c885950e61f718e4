#!/usr/bin/env bash
# Run a ClickHouse cluster on loopback: Debian's ZooKeeper (scripts/zookeeper.sh) and
# SHARDS x REPLICAS servers of Debian's clickhouse-server (scripts/clickhouse.sh), each node
# with config/clickhouse/cluster.xml filled in: the cluster, its shard and replica macros.
#
# usage: cluster.sh start|stop|status|nodes [--name NAME] [--shards S] [--replicas R]
#                   [--base-port P]
#   start   start ZooKeeper and every node (a no-op for those already running); waits until
#           ON CLUSTER DDL reaches every node. Prints the nodes as `nodes` does. If it fails,
#           it stops what this call started (not what was already running).
#   stop    stop every node, then ZooKeeper.
#   status  each node's and ZooKeeper's status; exit 1 if any is stopped.
#   nodes   one line per node: NODE_NAME SHARD REPLICA HTTP_PORT TCP_PORT INTERSERVER_PORT.
# Defaults: NAME=cluster, 2 shards x 2 replicas, ports from 21000: ZooKeeper on P, node i
# (0-based, shard by shard) on P+10+3i (HTTP), +1 (TCP), +2 (interserver).
# The ClickHouse cluster is called NAME in remote_servers (and NAME_nodes: every node a shard). Nodes are .work/clickhouse/NAME-sSrR/
# and share one admin password and one cluster-user password: .work/cluster/NAME/secrets.env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=cluster shards="" replicas="" base_port=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --shards) shards="$2"; shift 2 ;;
        --replicas) replicas="$2"; shift 2 ;;
        --base-port) base_port="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || die "--name must be lower-case letters, digits and _ (it names the cluster)"

DIR="$WORK/cluster/$name"
SHAPE="$DIR/shape"  # "SHARDS REPLICAS BASE_PORT" it was started with
if [ -f "$SHAPE" ]; then read -r saved_shards saved_replicas saved_base < "$SHAPE"; fi
shards="${shards:-${saved_shards:-2}}"
replicas="${replicas:-${saved_replicas:-2}}"
base_port="${base_port:-${saved_base:-21000}}"
SECRETS="$DIR/secrets.env"
ZK_NAME="$name"

# nodes: NODE SHARD REPLICA HTTP TCP INTERSERVER, shard by shard.
nodes() {
    local s r i=0
    for ((s = 1; s <= shards; s++)); do
        for ((r = 1; r <= replicas; r++)); do
            local p=$((base_port + 10 + 3 * i))
            echo "$name-s${s}r${r} $s s${s}r${r} $p $((p + 1)) $((p + 2))"
            i=$((i + 1))
        done
    done
}

# shards_xml GROUP: the <shard> elements of remote_servers, every node with the cluster user;
# GROUP "shard" puts the replicas of a shard together, "node" gives each node a shard of its own.
shards_xml() {
    local node shard replica http tcp inter current=""
    while read -r node shard replica http tcp inter; do
        [ "$1" = node ] && shard="$node"
        if [ "$shard" != "$current" ]; then
            [ -n "$current" ] && echo "            </shard>"
            echo "            <shard>"
            # 18.16 refuses ON CLUSTER ALTERs of tables that are not replicated on shards
            # that say they are: only the real shards do.
            echo "                <internal_replication>$([ "$1" = shard ] && echo true || echo false)</internal_replication>"
            current="$shard"
        fi
        echo "                <replica><host>127.0.0.1</host><port>$tcp</port><user>cluster</user><password>$WEBSTATS_CH_PASSWORD_CLUSTER</password></replica>"
    done < <(nodes)
    echo "            </shard>"
}

ensure_secrets() {
    mkdir -p "$DIR"
    if [ ! -s "$SECRETS" ]; then
        (umask 077; printf 'WEBSTATS_CH_PASSWORD_ADMIN=%s\nWEBSTATS_CH_PASSWORD_CLUSTER=%s\n' \
            "$(random_secret)" "$(random_secret)" > "$SECRETS")
    fi
    # shellcheck disable=SC1090
    source "$SECRETS"
}

# configure NODE SHARD REPLICA: the node's secrets, config.d/cluster.xml (from the <shard>
# lists in $DIR) and the cluster user. Only a line that is nothing but @SHARDS@ or @NODES@ is
# replaced: the template's comment names them too, and a password with "--" in a comment
# would make the file invalid XML.
configure() {
    local node_dir="$WORK/clickhouse/$1"
    mkdir -p "$node_dir/config.d" "$node_dir/users.d"
    (umask 077; grep '^WEBSTATS_CH_PASSWORD_ADMIN=' "$SECRETS" > "$node_dir/secrets.env")
    sed -e "s|@ZOOKEEPER_PORT@|$base_port|" -e "s|@CLUSTER@|$name|g" -e "s|@SHARD@|$2|" -e "s|@REPLICA@|$3|" \
        -e "/^@SHARDS@\$/{r $DIR/shards.xml" -e "d}" -e "/^@NODES@\$/{r $DIR/nodes.xml" -e "d}" \
        "$ROOT/config/clickhouse/cluster.xml" > "$node_dir/config.d/cluster.xml"
    chmod 600 "$node_dir/config.d/cluster.xml"
    local hash
    hash="$(printf '%s' "$WEBSTATS_CH_PASSWORD_CLUSTER" | sha256sum | cut -d' ' -f1)"
    sed "s/@CLUSTER_PASSWORD_SHA256@/$hash/" "$ROOT/config/clickhouse/cluster-user.xml" > "$node_dir/users.d/cluster.xml"
}

# undo_start: stops what this call of start started (the STARTED list), on a failed start.
STARTED=()
undo_start() {
    local what
    for what in "${STARTED[@]}"; do
        case "$what" in
            zookeeper) "$ROOT/scripts/zookeeper.sh" stop --name "$ZK_NAME" >/dev/null 2>&1 || true ;;
            *) "$ROOT/scripts/clickhouse.sh" stop --name "$what" >/dev/null 2>&1 || true ;;
        esac
    done
}

start() {
    trap 'undo_start' EXIT
    ensure_secrets
    echo "$shards $replicas $base_port" > "$SHAPE"
    (umask 077; shards_xml shard > "$DIR/shards.xml"; shards_xml node > "$DIR/nodes.xml")
    "$ROOT/scripts/zookeeper.sh" status --name "$ZK_NAME" >/dev/null 2>&1 || STARTED+=(zookeeper)
    "$ROOT/scripts/zookeeper.sh" start --name "$ZK_NAME" --port "$base_port"
    local node shard replica http tcp inter
    while read -r node shard replica http tcp inter; do
        configure "$node" "$shard" "$replica"
        "$ROOT/scripts/clickhouse.sh" status --name "$node" >/dev/null 2>&1 || STARTED+=("$node")
        "$ROOT/scripts/clickhouse.sh" start --name "$node" --http-port "$http" --tcp-port "$tcp" \
            --interserver-port "$inter" >/dev/null
    done < <(nodes)
    # ON CLUSTER DDL answers once every node has run it: the cluster is whole.
    local first_http
    first_http="$(nodes | awk 'NR == 1 { print $4 }')"
    WEBSTATS_CH_PASSWORD_ADMIN="$WEBSTATS_CH_PASSWORD_ADMIN" python3 - "$first_http" "$name" <<'PY'
import os, sys, time, urllib.request
port, cluster = sys.argv[1], sys.argv[2]
query = f"CREATE DATABASE IF NOT EXISTS cluster_check ON CLUSTER {cluster}".encode()
headers = {"X-ClickHouse-User": "admin", "X-ClickHouse-Key": os.environ["WEBSTATS_CH_PASSWORD_ADMIN"]}
deadline = time.time() + 60
while True:
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/?distributed_ddl_task_timeout=20", query, headers)
        urllib.request.urlopen(request, timeout=30).read()
        break
    except Exception as error:
        if time.time() > deadline:
            sys.exit(f"ON CLUSTER DDL does not reach every node: {error}")
        time.sleep(1)
PY
    trap - EXIT
    log "cluster $name: $shards shards x $replicas replicas, ZooKeeper on 127.0.0.1:$base_port"
    nodes
}

stop() {
    local node rest
    while read -r node rest; do
        "$ROOT/scripts/clickhouse.sh" stop --name "$node"
    done < <(nodes)
    "$ROOT/scripts/zookeeper.sh" stop --name "$ZK_NAME"
}

status() {
    local node rest failed=0
    printf 'zookeeper %s\n' "$("$ROOT/scripts/zookeeper.sh" status --name "$ZK_NAME" || true)"
    "$ROOT/scripts/zookeeper.sh" status --name "$ZK_NAME" >/dev/null || failed=1
    while read -r node rest; do
        printf '%s %s\n' "$node" "$("$ROOT/scripts/clickhouse.sh" status --name "$node" || true)"
        "$ROOT/scripts/clickhouse.sh" status --name "$node" >/dev/null || failed=1
    done < <(nodes)
    return $failed
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    nodes) nodes ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
