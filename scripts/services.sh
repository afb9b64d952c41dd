#!/usr/bin/env bash
# Starts the real database servers this repository's tests run against, on
# 127.0.0.1 only, without systemd or Docker, each with its data under
# target/services/<name>/. Installs what is missing (Debian packages, Maven
# artifacts, Go modules, two Python clients), caches builds, and is idempotent:
# a second run finds the servers up and returns in seconds.
#
#   scripts/services.sh                  start all (redis redis-cluster mariadb mariadb-tls
#                                        postgres cassandra cassandra-cluster ferretdb
#                                        ferretdb-tls)
#   scripts/services.sh redis postgres   start some
#   scripts/services.sh status           show which are up
#   scripts/services.sh stop [names]     stop all, or some
#
# Names: redis, redis-cluster (alias cluster), cassandra-cluster (alias
#        cassa-cluster: three nodes on 127.0.0.2-4, keyspace mqtt with RF 3),
#        mariadb (alias mysql), mariadb-tls (alias mysql-tls),
#        postgres (alias pgsql), cassandra (alias cassa), ferretdb (alias mongo),
#        ferretdb-tls (alias mongo-tls).
#
# TLS: the -tls services are second instances that accept TLS only, with a test
# CA and certificates made once with openssl under target/services/tls/ (ca.pem,
# ca.key, server.pem/.key for IP 127.0.0.1 and DNS localhost, client.pem/.key,
# client-bundle.pem = client.pem + client.key for MongoDB clients; EC P-256,
# 10 years). mariadb-tls listens on 3307 with require_secure_transport=ON (a
# plain connection fails with error 1045, Access denied), users root/public and
# tlsclient/public, the latter REQUIRE X509 (a client certificate signed by the
# CA). ferretdb-tls listens with TLS only on 27018 and asks for no client
# certificate (FerretDB's CA-file option would make one mandatory for every
# client). Their readiness checks verify the server against ca.pem. They print
# MYSQL_TLS_URL, MYSQL_TLS_X509_URL, MONGO_TLS_URL, TLS_CA_FILE, TLS_CLIENT_CERT,
# TLS_CLIENT_KEY and TLS_CLIENT_BUNDLE. Cassandra is one instance with two
# client ports: 9042 plain, 9142 TLS only (its server certificate from the same
# CA); it prints CASSA_NODES, CASSA_TLS_NODES and the TLS_* files.
#
# On success the connection settings are printed on stdout as KEY=value lines
# (everything else goes to stderr), so `set -a; eval "$(scripts/services.sh)"; set +a`
# exports them. The tests use the same values as defaults.
#
# Knobs (environment): SERVICES_TIMEOUT (seconds to wait per server, default 60;
# Cassandra gets SERVICES_CASSANDRA_TIMEOUT, default 300), CASSANDRA_HEAP (1g).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS=$ROOT/scripts
SVC=$ROOT/target/services
BIN=$SVC/bin

ALL_SERVICES=(redis redis-cluster mariadb mariadb-tls postgres cassandra cassandra-cluster ferretdb ferretdb-tls)
TIMEOUT=${SERVICES_TIMEOUT:-60}
CASSANDRA_TIMEOUT=${SERVICES_CASSANDRA_TIMEOUT:-300}
CASSANDRA_HEAP=${CASSANDRA_HEAP:-1g}

PG_BIN=/usr/lib/postgresql/15/bin
# Go from the official tarball lives here on these machines, not always on PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH=$PATH:/usr/local/go/bin
fi

log() { printf '[services +%ss] %s\n' "$SECONDS" "$*" >&2; }

die() {
    log "ERROR: $*"
    exit 1
}

# fail NAME LOGFILE... : report a server that did not come up, with its log tails.
FAILED=()
fail() {
    local name=$1
    shift
    log "ERROR: $name did not come up"
    local f
    for f in "$@"; do
        if [[ -f $f ]]; then
            printf '[services] ---- last lines of %s ----\n' "$f" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
    FAILED+=("$name")
}

canonical() {
    case $1 in
    redis) echo redis ;;
    redis-cluster | cluster) echo redis-cluster ;;
    mariadb | mysql) echo mariadb ;;
    postgres | postgresql | pgsql | pg) echo postgres ;;
    cassandra | cassa) echo cassandra ;;
    cassandra-cluster | cassa-cluster) echo cassandra-cluster ;;
    ferretdb | mongo | mongodb) echo ferretdb ;;
    mariadb-tls | mysql-tls) echo mariadb-tls ;;
    ferretdb-tls | mongo-tls | mongodb-tls) echo ferretdb-tls ;;
    *) die "unknown service '$1' (known: redis, redis-cluster|cluster, cassandra-cluster|cassa-cluster, mariadb|mysql, mariadb-tls|mysql-tls, postgres|pgsql, cassandra|cassa, ferretdb|mongo, ferretdb-tls|mongo-tls)" ;;
    esac
}

is_root() { [[ $(id -u) -eq 0 ]]; }

pid_alive() { # pidfile
    local pid started
    [[ -f $1 ]] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    # A pid file left by a server that is gone (the machine's processes
    # stopped without `stop`) may name a newer, unrelated process by now:
    # the server is alive only if its process started before the file was
    # last written.
    started=$(process_started "$pid") || return 0
    ((started <= $(stat -c %Y "$1") + 2))
}

# process_started PID: when PID started, in seconds since the epoch.
process_started() {
    local ticks btime hz
    ticks=$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $ticks ]] || return 1
    btime=$(awk '/^btime/ { print $2 }' /proc/stat)
    hz=$(getconf CLK_TCK)
    echo $((btime + ticks / hz))
}

# wait_until TIMEOUT PIDFILE CMD... : run CMD every second until it succeeds.
# Gives up early when PIDFILE is given and its process has died.
wait_until() {
    local timeout=$1 pidfile=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n $pidfile ]] && [[ -f $pidfile ]] && ! pid_alive "$pidfile"; then
            log "process of $pidfile exited"
            return 1
        fi
        sleep 1
    done
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open_on() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

hash_files() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------------------
# Packages

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

java17() {
    local j
    for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        [[ -x $j ]] && { echo "$j"; return 0; }
    done
    return 1
}

python_ok() { command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }

go_ok() { # FerretDB 1.24 needs Go >= 1.24 here (go.mod)
    command -v go >/dev/null || return 1
    local v
    v=$(go env GOVERSION 2>/dev/null) || return 1
    v=${v#go}
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%.*}
    ((major > 1 || (major == 1 && minor >= 24)))
}

ensure_packages() {
    local want=() s
    for s in "$@"; do
        case $s in
        redis) want+=(redis-server redis-tools redis-sentinel) ;;
        redis-cluster) want+=(redis-server redis-tools) ;;
        mariadb) want+=(mariadb-server mariadb-client) ;;
        mariadb-tls) want+=(mariadb-server mariadb-client openssl) ;;
        postgres) want+=(postgresql-15 postgresql-client-15) ;;
        cassandra | cassandra-cluster)
            java17 >/dev/null || want+=(openjdk-17-jre-headless)
            command -v mvn >/dev/null || want+=(maven)
            python_ok || want+=(python3 python3-venv)
            ;;
        ferretdb | ferretdb-tls)
            python_ok || want+=(python3 python3-venv)
            [[ $s == ferretdb ]] || want+=(openssl)
            ;;
        esac
    done
    local missing=() p
    for p in "${want[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    # de-duplicate
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        is_root || die "missing packages (${missing[*]}); run as root to install them"
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        local apt_log=$SVC/apt.log
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 ||
            { tail -n 40 "$apt_log" >&2; die "apt-get failed (log: $apt_log)"; }
    fi
    for s in "$@"; do
        if [[ $s == ferretdb* ]] && ! go_ok; then
            die "ferretdb: needs Go >= 1.24 on PATH to build (Debian 12's golang is too old)"
        fi
    done
}

# Python clients for the Cassandra and FerretDB readiness checks.
VENV=$SVC/venv
ensure_venv() {
    local req=$SCRIPTS/probe/requirements.txt stamp
    stamp=$(hash_files "$req")
    if [[ -f $VENV/.stamp && $(cat "$VENV/.stamp") == "$stamp" ]]; then
        return 0
    fi
    log "creating Python venv for the readiness probes ($VENV)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # The pure-Python cassandra-driver is enough for a probe; skip compiling.
    CASS_DRIVER_NO_CYTHON=1 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    echo "$stamp" >"$VENV/.stamp"
}

probe() { "$VENV/bin/python" "$SCRIPTS/probe/probe.py" "$@"; }

# ---------------------------------------------------------------------------
# Test CA and certificates for the -tls services (EC P-256, 10 years)

TLS_DIR=$SVC/tls
TLS_FILES=(ca.pem ca.key server.pem server.key client.pem client.key client-bundle.pem)

# Complete, signed by ca.pem, keys matching, and not expiring within 30 days.
tls_certs_ok() {
    local f
    for f in "${TLS_FILES[@]}"; do [[ -s $TLS_DIR/$f ]] || return 1; done
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/client.pem" >/dev/null 2>&1 || return 1
    for f in ca server client; do
        openssl x509 -noout -checkend $((30 * 86400)) -in "$TLS_DIR/$f.pem" >/dev/null 2>&1 || return 1
        [[ $(openssl x509 -noout -pubkey -in "$TLS_DIR/$f.pem" 2>/dev/null) == \
            "$(openssl pkey -pubout -in "$TLS_DIR/$f.key" 2>/dev/null)" ]] || return 1
    done
}

# tls_make DIR: a CA, a server certificate (IP 127.0.0.1, DNS localhost) and a
# client certificate (CN tlsclient) in DIR; openssl's output goes to DIR/openssl.log.
tls_make() {
    local dir=$1 days=3650
    ossl() { openssl "$@" </dev/null >>"$dir/openssl.log" 2>&1; }
    local n
    for n in ca server client; do
        ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$n.key" || return 1
    done
    ossl req -x509 -new -key "$dir/ca.key" -days "$days" -subj "/CN=mqtt-storage services test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$dir/ca.pem" || return 1
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost \
        subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$dir/server.ext"
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=clientAuth subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >"$dir/client.ext"
    local cn
    for n in server client; do
        cn=localhost
        [[ $n == client ]] && cn=tlsclient
        ossl req -new -key "$dir/$n.key" -subj "/CN=$cn" -out "$dir/$n.csr" || return 1
        ossl x509 -req -in "$dir/$n.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
            -days "$days" -extfile "$dir/$n.ext" -out "$dir/$n.pem" || return 1
    done
    cat "$dir/client.pem" "$dir/client.key" >"$dir/client-bundle.pem"
    rm -f "$dir"/*.csr "$dir"/*.ext "$dir"/*.srl
    # test material: the server keys are readable by whichever user runs a server
    chmod 644 "$dir"/*.pem "$dir/server.key" "$dir/client.key"
    chmod 600 "$dir/ca.key"
}

tls_certs() {
    tls_certs_ok && return 0
    local tmp=$SVC/tls.tmp
    log "tls: making the test CA and certificates in $TLS_DIR"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    tls_make "$tmp" || { tail -n 40 "$tmp/openssl.log" >&2; die "tls: openssl failed (log: $tmp/openssl.log)"; }
    rm -f "$tmp/openssl.log"
    # servers still holding the old certificates restart with the new ones
    mariadb_tls_stop
    ferretdb_tls_stop
    cassandra_stop
    rm -rf "$TLS_DIR"
    mv "$tmp" "$TLS_DIR"
}

# ---------------------------------------------------------------------------
# Redis

REDIS_DIR=$SVC/redis
redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

redis_start() {
    redis_ready && { log "redis: already up"; return 0; }
    mkdir -p "$REDIS_DIR"
    if ! pid_alive "$REDIS_DIR/redis.pid"; then
        log "redis: starting"
        redis-server --port 6379 --bind 127.0.0.1 --daemonize yes \
            --save '' --appendonly no --dir "$REDIS_DIR" \
            --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
    fi
}

redis_wait() {
    wait_until "$TIMEOUT" "" redis_ready || { fail redis "$REDIS_DIR/redis.log"; return 0; }
    log "redis: up ($(redis-cli -h 127.0.0.1 -p 6379 info server | sed -n 's/^redis_version:\(.*\)\r$/\1/p'))"
}

redis_stop() {
    if pid_alive "$REDIS_DIR/redis.pid"; then
        log "redis: stopping"
        redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || kill "$(cat "$REDIS_DIR/redis.pid")" || true
        wait_pid_gone "$REDIS_DIR/redis.pid" 30
    fi
}

# ---------------------------------------------------------------------------
# Redis Cluster: six nodes on 30001-30006 (three masters, three replicas),
# made once with redis-cli --cluster create. Each node keeps an append-only
# file (fsync every second) and its nodes.conf under its own folder, so a
# node killed and started again rejoins with its data and its role.

RCLUSTER_DIR=$SVC/redis-cluster
RCLUSTER_PORTS=(30001 30002 30003 30004 30005 30006)

rcluster_node_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# Every node up, sees the cluster as ok, all slots assigned, six nodes known.
redis_cluster_ready() {
    local p info
    for p in "${RCLUSTER_PORTS[@]}"; do
        info=$(redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | tr -d '\r') || return 1
        [[ $info == *"cluster_state:ok"* && $info == *"cluster_slots_assigned:16384"* &&
            $info == *"cluster_known_nodes:6"* ]] || return 1
    done
}

rcluster_node_start() { # port
    local p=$1 d=$RCLUSTER_DIR/$1
    mkdir -p "$d"
    rcluster_node_ready "$p" && return 0
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --save '' --appendonly yes --appendfsync everysec --dir "$d" \
        --pidfile "$d/redis.pid" --logfile "$d/redis.log"
}

redis_cluster_start() {
    redis_cluster_ready && { log "redis-cluster: already up"; return 0; }
    log "redis-cluster: starting 6 nodes on ${RCLUSTER_PORTS[0]}-${RCLUSTER_PORTS[5]}"
    local p
    for p in "${RCLUSTER_PORTS[@]}"; do rcluster_node_start "$p"; done
}

redis_cluster_wait() {
    local p logs=()
    for p in "${RCLUSTER_PORTS[@]}"; do logs+=("$RCLUSTER_DIR/$p/redis.log"); done
    for p in "${RCLUSTER_PORTS[@]}"; do
        wait_until "$TIMEOUT" "" rcluster_node_ready "$p" || { fail redis-cluster "${logs[@]}"; return 0; }
    done
    # Nodes that knew their cluster (nodes.conf) find each other again.
    if [[ -f $RCLUSTER_DIR/created ]] && wait_until 30 "" redis_cluster_ready; then
        log "redis-cluster: up (3 masters, 3 replicas)"
        return 0
    fi
    log "redis-cluster: creating the cluster"
    for p in "${RCLUSTER_PORTS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$p" flushall >/dev/null 2>&1 || true
        redis-cli -h 127.0.0.1 -p "$p" cluster reset hard >/dev/null 2>&1 || true
    done
    local nodes=()
    for p in "${RCLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
    if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$RCLUSTER_DIR/create.log" 2>&1; then
        fail redis-cluster "$RCLUSTER_DIR/create.log" "${logs[@]}"
        return 0
    fi
    wait_until "$TIMEOUT" "" redis_cluster_ready || { fail redis-cluster "$RCLUSTER_DIR/create.log" "${logs[@]}"; return 0; }
    touch "$RCLUSTER_DIR/created"
    log "redis-cluster: up (3 masters, 3 replicas, created)"
}

redis_cluster_stop() {
    local p
    for p in "${RCLUSTER_PORTS[@]}"; do
        if pid_alive "$RCLUSTER_DIR/$p/redis.pid"; then
            redis-cli -h 127.0.0.1 -p "$p" shutdown >/dev/null 2>&1 || kill "$(cat "$RCLUSTER_DIR/$p/redis.pid")" || true
        fi
    done
    for p in "${RCLUSTER_PORTS[@]}"; do
        [[ -f $RCLUSTER_DIR/$p/redis.pid ]] && wait_pid_gone "$RCLUSTER_DIR/$p/redis.pid" 30
    done
    log "redis-cluster: stopped"
}

# ---------------------------------------------------------------------------
# MariaDB

MARIADB_DIR=$SVC/mariadb
MARIADB_SOCK=$MARIADB_DIR/mysqld.sock
mariadb_tcp() { mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 -u root -ppublic mqtt "$@"; }
mariadb_sock() { mariadb --no-defaults --socket="$MARIADB_SOCK" -u root "$@"; }
mariadb_ready() { mariadb_tcp -N -e 'SELECT 1' >/dev/null 2>&1; }

# mariadb_launch NAME DIR PORT [MARIADBD-ARGS...]: initialise DIR/data when
# needed, then start mariadbd (socket DIR/mysqld.sock) unless it runs already.
mariadb_launch() {
    local name=$1 dir=$2 port=$3
    shift 3
    mkdir -p "$dir"
    pid_alive "$dir/mysqld.pid" && return 0
    local user
    user=$(id -un)
    if [[ ! -d $dir/data/mysql ]]; then
        log "$name: initialising $dir/data"
        rm -rf "$dir/data"
        mariadb-install-db --no-defaults --user="$user" --datadir="$dir/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$dir/install.log" 2>&1 ||
            { fail "$name" "$dir/install.log"; return 0; }
    fi
    log "$name: starting"
    setsid nohup mariadbd --no-defaults --user="$user" --datadir="$dir/data" \
        --socket="$dir/mysqld.sock" --port="$port" --bind-address=127.0.0.1 \
        --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
        --skip-log-bin --skip-name-resolve --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_general_ci --innodb-buffer-pool-size=128M \
        --innodb-flush-log-at-trx-commit=2 --tmpdir="$dir" "$@" \
        </dev/null >"$dir/mariadbd.out" 2>&1 &
}

mariadb_start() {
    mariadb_ready && { log "mariadb: already up"; return 0; }
    mariadb_launch mariadb "$MARIADB_DIR" 3306
}

mariadb_wait() {
    mariadb_ready && { log "mariadb: up"; return 0; }
    local logs=("$MARIADB_DIR/error.log" "$MARIADB_DIR/mariadbd.out")
    wait_until "$TIMEOUT" "" mariadb-admin --no-defaults --socket="$MARIADB_SOCK" -u root ping ||
        { fail mariadb "${logs[@]}"; return 0; }
    # root over the unix socket (OS root) needs no password; TCP clients use
    # root/public, which MariaDB really checks.
    if ! mariadb_sock >"$MARIADB_DIR/setup.log" 2>&1 <<'SQL'; then
CREATE DATABASE IF NOT EXISTS mqtt CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY 'public';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'public';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        fail mariadb "$MARIADB_DIR/setup.log" "${logs[@]}"
        return 0
    fi
    wait_until "$TIMEOUT" "" mariadb_ready || { fail mariadb "${logs[@]}"; return 0; }
    log "mariadb: up ($(mariadb_tcp -N -e 'SELECT VERSION()'))"
}

mariadb_stop() {
    if pid_alive "$MARIADB_DIR/mysqld.pid"; then
        log "mariadb: stopping"
        kill "$(cat "$MARIADB_DIR/mysqld.pid")" || true
        wait_pid_gone "$MARIADB_DIR/mysqld.pid" 60
    fi
}

# ---------------------------------------------------------------------------
# MariaDB with TLS only: a second instance on 3307 (require_secure_transport)

MARIADB_TLS_DIR=$SVC/mariadb-tls
MARIADB_TLS_SOCK=$MARIADB_TLS_DIR/mysqld.sock
# USER PASSWORD ARGS...: a TLS connection that verifies the server against ca.pem
mariadb_tls_as() {
    local user=$1 password=$2
    shift 2
    mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P 3307 -u "$user" -p"$password" \
        --ssl --ssl-ca="$TLS_DIR/ca.pem" --ssl-verify-server-cert --connect-timeout=5 mqtt "$@"
}
mariadb_tls_tcp() { mariadb_tls_as root public "$@"; }
mariadb_tls_x509() { mariadb_tls_as tlsclient public --ssl-cert="$TLS_DIR/client.pem" --ssl-key="$TLS_DIR/client.key" "$@"; }
mariadb_tls_plain() { mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P 3307 -u root -ppublic --skip-ssl --connect-timeout=5 mqtt "$@"; }
mariadb_tls_sock() { mariadb --no-defaults --socket="$MARIADB_TLS_SOCK" -u root "$@"; }
# ready = root/public answers over a verified TLS connection
mariadb_tls_ready() {
    local v
    v=$(mariadb_tls_tcp -N -e "SHOW SESSION STATUS LIKE 'Ssl_version'" 2>/dev/null) || return 1
    [[ $v == Ssl_version*TLS* ]]
}

mariadb_tls_start() {
    mariadb_tls_ready && { log "mariadb-tls: already up"; return 0; }
    mariadb_launch mariadb-tls "$MARIADB_TLS_DIR" 3307 \
        --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" --ssl-key="$TLS_DIR/server.key" \
        --require-secure-transport=ON
}

mariadb_tls_wait() {
    mariadb_tls_ready && { log "mariadb-tls: up"; return 0; }
    local d=$MARIADB_TLS_DIR
    local logs=("$d/error.log" "$d/mariadbd.out")
    wait_until "$TIMEOUT" "" mariadb-admin --no-defaults --socket="$MARIADB_TLS_SOCK" -u root ping ||
        { fail mariadb-tls "${logs[@]}"; return 0; }
    # The unix socket counts as a secure transport. root@127.0.0.1 last: once
    # it can log in, the rest is done.
    if ! mariadb_tls_sock >"$d/setup.log" 2>&1 <<'SQL'; then
CREATE DATABASE IF NOT EXISTS mqtt CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'tlsclient'@'%' IDENTIFIED BY 'public' REQUIRE X509;
ALTER USER 'tlsclient'@'%' IDENTIFIED BY 'public' REQUIRE X509;
GRANT ALL PRIVILEGES ON mqtt.* TO 'tlsclient'@'%';
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY 'public';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'public';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        fail mariadb-tls "$d/setup.log" "${logs[@]}"
        return 0
    fi
    wait_until "$TIMEOUT" "" mariadb_tls_ready || { fail mariadb-tls "${logs[@]}"; return 0; }
    # what the tests rely on: a client certificate logs tlsclient in; plain TCP is refused
    local out
    if ! out=$(mariadb_tls_x509 -N -e 'SELECT CURRENT_USER()' 2>&1); then
        log "mariadb-tls: tlsclient with the client certificate: $out"
        fail mariadb-tls "${logs[@]}"
        return 0
    fi
    if out=$(mariadb_tls_plain -N -e 'SELECT 1' 2>&1); then
        log "mariadb-tls: a plain connection was accepted"
        fail mariadb-tls "${logs[@]}"
        return 0
    fi
    log "mariadb-tls: up ($(mariadb_tls_tcp -N -e "SELECT CONCAT(VERSION(), ', ', VARIABLE_VALUE) FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'"); plain TCP refused)"
}

mariadb_tls_stop() {
    if pid_alive "$MARIADB_TLS_DIR/mysqld.pid"; then
        log "mariadb-tls: stopping"
        kill "$(cat "$MARIADB_TLS_DIR/mysqld.pid")" || true
        wait_pid_gone "$MARIADB_TLS_DIR/mysqld.pid" 60
    fi
}

# ---------------------------------------------------------------------------
# PostgreSQL 15

PG_DIR=$SVC/postgres
# The server runs as user postgres (initdb refuses root), which must be able to
# reach its folder. When a parent of the repository is closed to other users
# (say a checkout under a mode-700 folder), the folder goes under /var/tmp
# instead, with target/services/postgres as a symlink to it.
pg_dir_init() {
    if [[ -L $PG_DIR ]]; then
        PG_DIR=$(readlink -f "$PG_DIR")
        return 0
    fi
    is_root || return 0
    id postgres >/dev/null 2>&1 || return 0
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    if ! runuser -u postgres -- test -w "$PG_DIR" 2>/dev/null; then
        local alt
        alt=/var/tmp/mqtt-storage-services-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/postgres
        log "postgres: user postgres cannot reach $PG_DIR; using $alt (symlinked)"
        rmdir "$PG_DIR" 2>/dev/null || rm -rf "$PG_DIR"
        mkdir -p "$alt"
        chown postgres:postgres "$alt"
        chmod 755 "$(dirname "$alt")"
        ln -s "$alt" "$PG_DIR"
        PG_DIR=$alt
    fi
}
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
pg_ready() { PGPASSWORD=public PGCONNECT_TIMEOUT=3 psql -X -h 127.0.0.1 -p 5432 -U root -d mqtt -tAc 'SELECT 1' >/dev/null 2>&1; }
pg_admin() { psql -X -v ON_ERROR_STOP=1 -h "$PG_DIR" -p 5432 -U postgres -d postgres -tA "$@"; }

postgres_start() {
    pg_ready && { log "postgres: already up"; return 0; }
    pg_dir_init
    mkdir -p "$PG_DIR"
    as_pg test -w "$PG_DIR" || die "postgres: the postgres user cannot write $PG_DIR"
    if [[ -f $PG_DIR/data/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        return 0
    fi
    if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
        log "postgres: initdb $PG_DIR/data"
        rm -rf "$PG_DIR/data"
        # trust on the unix socket, scram-sha-256 password auth over TCP
        as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            >"$PG_DIR/initdb.log" 2>&1 || { fail postgres "$PG_DIR/initdb.log"; return 0; }
    fi
    log "postgres: starting"
    # pg_ctl -W: do not wait here (postgres_wait does); the postmaster detaches.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -W \
        -o "-p 5432 -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >"$PG_DIR/pg_ctl.log" 2>&1 || { fail postgres "$PG_DIR/pg_ctl.log" "$PG_DIR/postgres.log"; return 0; }
}

postgres_wait() {
    pg_ready && { log "postgres: up"; return 0; }
    local logs=("$PG_DIR/postgres.log" "$PG_DIR/pg_ctl.log")
    wait_until "$TIMEOUT" "" "$PG_BIN/pg_isready" -q -h "$PG_DIR" -p 5432 || { fail postgres "${logs[@]}"; return 0; }
    {
        if [[ $(pg_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'root'") == 1 ]]; then
            pg_admin -c "ALTER ROLE root WITH LOGIN SUPERUSER PASSWORD 'public'"
        else
            pg_admin -c "CREATE ROLE root WITH LOGIN SUPERUSER PASSWORD 'public'"
        fi
        if [[ $(pg_admin -c "SELECT 1 FROM pg_database WHERE datname = 'mqtt'") != 1 ]]; then
            pg_admin -c "CREATE DATABASE mqtt OWNER root"
        fi
    } >"$PG_DIR/setup.log" 2>&1 || { fail postgres "$PG_DIR/setup.log" "${logs[@]}"; return 0; }
    wait_until "$TIMEOUT" "" pg_ready || { fail postgres "${logs[@]}"; return 0; }
    log "postgres: up ($(PGPASSWORD=public psql -X -h 127.0.0.1 -p 5432 -U root -d mqtt -tAc 'SHOW server_version'))"
}

postgres_stop() {
    [[ -L $PG_DIR ]] && PG_DIR=$(readlink -f "$PG_DIR")
    if [[ -f $PG_DIR/data/postmaster.pid ]]; then
        log "postgres: stopping"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >&2 || true
    fi
}

# ---------------------------------------------------------------------------
# Apache Cassandra 5.0 from Maven Central artifacts

CASSA_DIR=$SVC/cassandra
CASSA_LIB=$CASSA_DIR/lib
CASSA_PID=$CASSA_DIR/cassandra.pid
cassandra_ready() { port_open 9042 && probe cassandra 127.0.0.1 9042 cassandra cassandra >/dev/null 2>&1; }

cassandra_lib() {
    local pom=$SCRIPTS/cassandra/pom.xml stamp
    stamp=$(hash_files "$pom")
    if [[ -f $CASSA_LIB/.stamp && $(cat "$CASSA_LIB/.stamp") == "$stamp" ]]; then
        return 0
    fi
    log "cassandra: resolving the classpath with Maven into $CASSA_LIB"
    rm -rf "$CASSA_LIB"
    mkdir -p "$CASSA_DIR"
    mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$CASSA_LIB" \
        >"$CASSA_DIR/mvn.log" 2>&1 || { tail -n 40 "$CASSA_DIR/mvn.log" >&2; die "cassandra: mvn failed"; }
    echo "$stamp" >"$CASSA_LIB/.stamp"
}

cassandra_start() {
    if pid_alive "$CASSA_PID"; then
        return 0 # up, or still starting: cassandra_wait tells
    fi
    cassandra_ready && { log "cassandra: already up (not started by this script)"; return 0; }
    cassandra_lib
    local java jamm
    java=$(java17) || die "cassandra: no Java 17 found under /usr/lib/jvm"
    jamm=$(ls "$CASSA_LIB"/jamm-*.jar 2>/dev/null | head -n 1) || true
    [[ -n $jamm ]] || die "cassandra: no jamm jar in $CASSA_LIB"
    mkdir -p "$CASSA_DIR/data" "$CASSA_DIR/logs" "$CASSA_DIR/tmp" "$CASSA_DIR/triggers"
    # the TLS port's key and certificate in one PEM (cassandra.yaml: keystore)
    cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$CASSA_DIR/tls-keystore.pem"
    local opts=()
    mapfile -t opts < <(grep -E '^-' "$SCRIPTS/cassandra/jvm.options")
    log "cassandra: starting (heap $CASSANDRA_HEAP)"
    (
        cd "$CASSA_DIR"
        exec setsid nohup "$java" \
            "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" \
            "${opts[@]}" \
            "-javaagent:$jamm" \
            "-XX:HeapDumpPath=$CASSA_DIR/tmp" \
            "-Djava.io.tmpdir=$CASSA_DIR/tmp" \
            "-Djna.tmpdir=$CASSA_DIR/tmp" \
            "-Dcassandra.config=file://$SCRIPTS/cassandra/cassandra.yaml" \
            "-Dlogback.configurationFile=$SCRIPTS/cassandra/logback.xml" \
            "-Dcassandra.storagedir=$CASSA_DIR/data" \
            "-Dcassandra.logdir=$CASSA_DIR/logs" \
            "-Dcassandra-pidfile=$CASSA_PID" \
            "-Dcassandra.triggers_dir=$CASSA_DIR/triggers" \
            -cp "$CASSA_LIB/*" \
            org.apache.cassandra.service.CassandraDaemon \
            </dev/null >"$CASSA_DIR/cassandra.out" 2>&1
    ) &
    echo $! >"$CASSA_PID"
}

cassandra_wait() {
    local logs=("$CASSA_DIR/cassandra.out" "$CASSA_DIR/logs/system.log")
    if ! cassandra_ready && ! wait_until "$CASSANDRA_TIMEOUT" "$CASSA_PID" cassandra_ready; then
        # Cassandra 5's start-up check walks the data folder and can fail on
        # a transaction log that its own clean-up removes meanwhile ("Unable
        # to verify sstable files on disk"); the data is intact and a second
        # start passes. One more try, for an early exit only.
        if pid_alive "$CASSA_PID" || ! grep -q "Unable to verify sstable files" "$CASSA_DIR/cassandra.out" 2>/dev/null; then
            fail cassandra "${logs[@]}"
            return 0
        fi
        log "cassandra: exited while checking its files at start; starting once more"
        rm -f "$CASSA_PID"
        cassandra_start
        wait_until "$CASSANDRA_TIMEOUT" "$CASSA_PID" cassandra_ready || { fail cassandra "${logs[@]}"; return 0; }
    fi
    local out
    if ! out=$(probe cassandra 127.0.0.1 9042 cassandra cassandra \
        "CREATE KEYSPACE IF NOT EXISTS mqtt WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}" 2>&1); then
        log "$out"
        fail cassandra "${logs[@]}"
        return 0
    fi
    if ! probe cassandra-tls 127.0.0.1 9142 cassandra cassandra "$TLS_DIR/ca.pem" >/dev/null 2>&1; then
        log "cassandra: the TLS port 9142 does not answer with a certificate signed by $TLS_DIR/ca.pem"
        fail cassandra "${logs[@]}"
        return 0
    fi
    log "cassandra: up ($out), keyspace mqtt, TLS on 9142"
}

cassandra_stop() {
    if pid_alive "$CASSA_PID"; then
        log "cassandra: stopping"
        kill "$(cat "$CASSA_PID")" || true
        wait_pid_gone "$CASSA_PID" 90
    fi
}

# ---------------------------------------------------------------------------
# A three-node Apache Cassandra cluster on loopback aliases 127.0.0.2-4
# (127.0.0.1 is the single node above), the same jars and settings, each
# node with its own folder under target/services/cassandra-cluster/, a heap
# of CASSANDRA_CLUSTER_HEAP (512m), one token each spread over the ring (a
# new cluster: no bootstrap), and the keyspace mqtt with replication
# factor 3.

CCLUSTER_DIR=$SVC/cassandra-cluster
CCLUSTER_NODES=(127.0.0.2 127.0.0.3 127.0.0.4)
CCLUSTER_TOKENS=(-9223372036854775808 -3074457345618258603 3074457345618258602)
CASSANDRA_CLUSTER_HEAP=${CASSANDRA_CLUSTER_HEAP:-512m}

ccluster_node_ready() { port_open_on "$1" 9042 && probe cassandra "$1" 9042 cassandra cassandra >/dev/null 2>&1; }

# All three answer, and the first sees the other two as peers that are up.
cassandra_cluster_ready() {
    local n
    for n in "${CCLUSTER_NODES[@]}"; do ccluster_node_ready "$n" || return 1; done
    [[ $(probe cassandra-peers "${CCLUSTER_NODES[0]}" 9042 cassandra cassandra 2>/dev/null) == 2 ]]
}

# ccluster_node_start INDEX: node INDEX (0-2) with its own yaml.
ccluster_node_start() {
    local i=$1 ip=${CCLUSTER_NODES[$1]}
    local d=$CCLUSTER_DIR/node$((i + 1))
    pid_alive "$d/cassandra.pid" && return 0
    ccluster_node_ready "$ip" && return 0
    mkdir -p "$d/data" "$d/logs" "$d/tmp" "$d/triggers"
    # The single node's file, for this address, without its TLS port.
    sed -e "s/^listen_address: .*/listen_address: $ip/" \
        -e "s/^rpc_address: .*/rpc_address: $ip/" \
        -e "s/- seeds: .*/- seeds: \"${CCLUSTER_NODES[0]}:7000\"/" \
        -e "s/^cluster_name: .*/cluster_name: mqtt-storage-test-cluster/" \
        -e '/^native_transport_port_ssl:/d' \
        -e '/^client_encryption_options:/,/^  keystore:/d' \
        "$SCRIPTS/cassandra/cassandra.yaml" >"$d/cassandra.yaml"
    printf '%s\n' "initial_token: ${CCLUSTER_TOKENS[$i]}" "auto_bootstrap: false" >>"$d/cassandra.yaml"
    local java jamm opts=()
    java=$(java17) || die "cassandra-cluster: no Java 17 found under /usr/lib/jvm"
    jamm=$(ls "$CASSA_LIB"/jamm-*.jar 2>/dev/null | head -n 1) || true
    [[ -n $jamm ]] || die "cassandra-cluster: no jamm jar in $CASSA_LIB"
    mapfile -t opts < <(grep -E '^-' "$SCRIPTS/cassandra/jvm.options")
    (
        cd "$d"
        exec setsid nohup "$java" \
            "-Xms$CASSANDRA_CLUSTER_HEAP" "-Xmx$CASSANDRA_CLUSTER_HEAP" \
            "${opts[@]}" \
            "-javaagent:$jamm" \
            "-XX:HeapDumpPath=$d/tmp" \
            "-Djava.io.tmpdir=$d/tmp" \
            "-Djna.tmpdir=$d/tmp" \
            "-Dcassandra.config=file://$d/cassandra.yaml" \
            "-Dlogback.configurationFile=$SCRIPTS/cassandra/logback.xml" \
            "-Dcassandra.storagedir=$d/data" \
            "-Dcassandra.logdir=$d/logs" \
            "-Dcassandra-pidfile=$d/cassandra.pid" \
            "-Dcassandra.triggers_dir=$d/triggers" \
            -cp "$CASSA_LIB/*" \
            org.apache.cassandra.service.CassandraDaemon \
            </dev/null >"$d/cassandra.out" 2>&1
    ) &
    echo $! >"$d/cassandra.pid"
}

cassandra_cluster_start() {
    cassandra_cluster_ready && { log "cassandra-cluster: already up"; return 0; }
    cassandra_lib
    log "cassandra-cluster: starting 3 nodes on ${CCLUSTER_NODES[*]} (heap $CASSANDRA_CLUSTER_HEAP each)"
    # The seed first: a node that finds no seed to gossip with gives up.
    ccluster_node_start 0
    wait_until "$CASSANDRA_TIMEOUT" "$CCLUSTER_DIR/node1/cassandra.pid" port_open_on "${CCLUSTER_NODES[0]}" 7000 ||
        { fail cassandra-cluster "$CCLUSTER_DIR/node1/cassandra.out" "$CCLUSTER_DIR/node1/logs/system.log"; return 0; }
    ccluster_node_start 1
    ccluster_node_start 2
}

# The keyspace mqtt and system_auth at RF 3, the role on every replica.
ccluster_setup() {
    probe cassandra "${CCLUSTER_NODES[0]}" 9042 cassandra cassandra \
        "ALTER KEYSPACE system_auth WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}" \
        "ALTER ROLE cassandra WITH PASSWORD = 'cassandra'" \
        "CREATE KEYSPACE IF NOT EXISTS mqtt WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}"
}

cassandra_cluster_wait() {
    local i logs=()
    for i in 1 2 3; do logs+=("$CCLUSTER_DIR/node$i/cassandra.out" "$CCLUSTER_DIR/node$i/logs/system.log"); done
    wait_until "$CASSANDRA_TIMEOUT" "" cassandra_cluster_ready || { fail cassandra-cluster "${logs[@]}"; return 0; }
    # system_auth replicated like the data (its default, one replica, makes
    # logins fail while that replica's node is down); rewriting the role
    # puts it on every replica. Cassandra refuses a password change within
    # 5 s of the last (the role is created at start), so retry for a while:
    # every statement here may run again.
    local out
    if ! wait_until 60 "" ccluster_setup; then
        out=$(ccluster_setup 2>&1) || true
        log "$out"
        fail cassandra-cluster "${logs[@]}"
        return 0
    fi
    # Each node's own view of the schema: after a restart a node has been
    # seen to come up without a keyspace the others have (and refuse
    # `USE mqtt`). The cluster is a test fixture: start it afresh, once.
    local n stale=""
    for n in "${CCLUSTER_NODES[@]}"; do
        probe cassandra-keyspace "$n" 9042 cassandra cassandra mqtt >/dev/null 2>&1 || stale+=" $n"
    done
    if [[ -n $stale ]]; then
        if [[ -n ${CCLUSTER_AFRESH:-} ]]; then
            log "cassandra-cluster: keyspace mqtt missing on$stale even on a new cluster"
            fail cassandra-cluster "${logs[@]}"
            return 0
        fi
        log "cassandra-cluster: keyspace mqtt missing on$stale; starting a new cluster"
        cassandra_cluster_stop
        rm -rf "$CCLUSTER_DIR"
        CCLUSTER_AFRESH=1
        cassandra_cluster_start
        cassandra_cluster_wait
        return 0
    fi
    out=$(probe cassandra "${CCLUSTER_NODES[0]}" 9042 cassandra cassandra 2>&1) || out="?"
    log "cassandra-cluster: up ($out), 3 nodes, keyspace mqtt (RF 3)"
}

cassandra_cluster_stop() {
    local i d
    for i in 1 2 3; do
        d=$CCLUSTER_DIR/node$i
        pid_alive "$d/cassandra.pid" && kill "$(cat "$d/cassandra.pid")" || true
    done
    for i in 1 2 3; do
        d=$CCLUSTER_DIR/node$i
        [[ -f $d/cassandra.pid ]] && wait_pid_gone "$d/cassandra.pid" 90
    done
    log "cassandra-cluster: stopped"
}

# ---------------------------------------------------------------------------
# FerretDB (MongoDB wire protocol) over SQLite

FERRET_DIR=$SVC/ferretdb
FERRET_PID=$FERRET_DIR/ferretdb.pid
ferretdb_ready() { port_open 27017 && probe mongo mongodb://127.0.0.1:27017/ >/dev/null 2>&1; }

ferretdb_bin() {
    local src=$SCRIPTS/ferretdb key bin
    local version
    version=$(awk '$1 == "github.com/FerretDB/FerretDB" { print $2 } $1 == "require" && $2 == "github.com/FerretDB/FerretDB" { print $3 }' "$src/go.mod")
    key=$(hash_files "$src/go.mod" "$src/go.sum" "$src/main.go")
    bin=$BIN/ferretdb-$version-$key
    if [[ ! -x $bin ]]; then
        log "ferretdb: building $version with $(go env GOVERSION)"
        mkdir -p "$BIN" "$FERRET_DIR"
        (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .) >"$FERRET_DIR/build.log" 2>&1 ||
            { tail -n 40 "$FERRET_DIR/build.log" >&2; die "ferretdb: go build failed"; }
        mv "$bin.tmp" "$bin"
    fi
    echo "$bin"
}

ferretdb_start() {
    pid_alive "$FERRET_PID" && return 0
    ferretdb_ready && { log "ferretdb: already up (not started by this script)"; return 0; }
    local bin
    bin=$(ferretdb_bin)
    mkdir -p "$FERRET_DIR/data"
    log "ferretdb: starting"
    setsid nohup "$bin" -listen-addr 127.0.0.1:27017 -handler sqlite \
        -sqlite-url "file:$FERRET_DIR/data/" -log-level warn \
        </dev/null >"$FERRET_DIR/ferretdb.log" 2>&1 &
    echo $! >"$FERRET_PID"
}

ferretdb_wait() {
    local out
    if ! ferretdb_ready; then
        wait_until "$TIMEOUT" "$FERRET_PID" ferretdb_ready || { fail ferretdb "$FERRET_DIR/ferretdb.log"; return 0; }
    fi
    out=$(probe mongo mongodb://127.0.0.1:27017/) || { fail ferretdb "$FERRET_DIR/ferretdb.log"; return 0; }
    log "ferretdb: up (reports MongoDB $out)"
}

ferretdb_stop() {
    if pid_alive "$FERRET_PID"; then
        log "ferretdb: stopping"
        kill "$(cat "$FERRET_PID")" || true
        wait_pid_gone "$FERRET_PID" 30
    fi
}

# ---------------------------------------------------------------------------
# FerretDB with TLS only: a second process on 27018, its own SQLite directory.
# No -listen-tls-ca-file: with it FerretDB demands a client certificate from
# every client (Go's tls.RequireAndVerifyClientCert).

FERRET_TLS_DIR=$SVC/ferretdb-tls
FERRET_TLS_PID=$FERRET_TLS_DIR/ferretdb.pid
ferretdb_tls_probe() { probe mongo mongodb://127.0.0.1:27018/ "$TLS_DIR/ca.pem"; }
ferretdb_tls_ready() { port_open 27018 && ferretdb_tls_probe >/dev/null 2>&1; }

ferretdb_tls_start() {
    pid_alive "$FERRET_TLS_PID" && return 0
    ferretdb_tls_ready && { log "ferretdb-tls: already up (not started by this script)"; return 0; }
    local bin
    bin=$(ferretdb_bin)
    mkdir -p "$FERRET_TLS_DIR/data"
    log "ferretdb-tls: starting"
    setsid nohup "$bin" -listen-addr '' -listen-tls 127.0.0.1:27018 \
        -listen-tls-cert-file "$TLS_DIR/server.pem" -listen-tls-key-file "$TLS_DIR/server.key" \
        -handler sqlite -sqlite-url "file:$FERRET_TLS_DIR/data/" -log-level warn \
        </dev/null >"$FERRET_TLS_DIR/ferretdb.log" 2>&1 &
    echo $! >"$FERRET_TLS_PID"
}

ferretdb_tls_wait() {
    local out
    if ! out=$(port_open 27018 && ferretdb_tls_probe 2>/dev/null); then
        wait_until "$TIMEOUT" "$FERRET_TLS_PID" ferretdb_tls_ready || { fail ferretdb-tls "$FERRET_TLS_DIR/ferretdb.log"; return 0; }
        out=$(ferretdb_tls_probe) || { fail ferretdb-tls "$FERRET_TLS_DIR/ferretdb.log"; return 0; }
    fi
    log "ferretdb-tls: up (reports MongoDB $out, TLS verified against ca.pem)"
}

ferretdb_tls_stop() {
    if pid_alive "$FERRET_TLS_PID"; then
        log "ferretdb-tls: stopping"
        kill "$(cat "$FERRET_TLS_PID")" || true
        wait_pid_gone "$FERRET_TLS_PID" 30
    fi
}

# ---------------------------------------------------------------------------

wait_pid_gone() { # pidfile timeout
    local pid deadline=$((SECONDS + $2))
    pid=$(cat "$1" 2>/dev/null) || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "pid $pid still running after $2 s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "$1"
}

env_lines() {
    local s
    if [[ " $* " == *"-tls "* || " $* " == *" cassandra "* ]]; then
        printf '%s\n' "TLS_CA_FILE=$TLS_DIR/ca.pem" "TLS_CLIENT_CERT=$TLS_DIR/client.pem" \
            "TLS_CLIENT_KEY=$TLS_DIR/client.key" "TLS_CLIENT_BUNDLE=$TLS_DIR/client-bundle.pem"
    fi
    for s in "$@"; do
        case $s in
        redis) echo "REDIS_URL=redis://127.0.0.1:6379" ;;
        redis-cluster) echo "REDIS_CLUSTER_NODES=127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003,127.0.0.1:30004,127.0.0.1:30005,127.0.0.1:30006" ;;
        mariadb) echo "MYSQL_URL=mysql://root:public@127.0.0.1:3306/mqtt" ;;
        postgres) echo "PGSQL_URL=postgres://root:public@127.0.0.1:5432/mqtt" ;;
        cassandra)
            printf '%s\n' "CASSA_NODES=127.0.0.1:9042" "CASSA_TLS_NODES=127.0.0.1:9142" \
                "CASSA_USER=cassandra" "CASSA_PASSWORD=cassandra"
            ;;
        cassandra-cluster) echo "CASSA_CLUSTER_NODES=127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042" ;;
        ferretdb) echo "MONGO_URL=mongodb://127.0.0.1:27017" ;;
        mariadb-tls)
            printf '%s\n' "MYSQL_TLS_URL=mysql://root:public@127.0.0.1:3307/mqtt" \
                "MYSQL_TLS_X509_URL=mysql://tlsclient:public@127.0.0.1:3307/mqtt"
            ;;
        ferretdb-tls) echo "MONGO_TLS_URL=mongodb://127.0.0.1:27018" ;;
        esac
    done
}

status() {
    local s rc=0
    for s in "$@"; do
        local up=down
        case $s in
        redis) command -v redis-cli >/dev/null && redis_ready && up=up ;;
        redis-cluster) command -v redis-cli >/dev/null && redis_cluster_ready && up=up ;;
        mariadb) command -v mariadb >/dev/null && mariadb_ready && up=up ;;
        postgres) command -v psql >/dev/null && pg_ready && up=up ;;
        cassandra) [[ -x $VENV/bin/python ]] && cassandra_ready && up=up ;;
        cassandra-cluster) [[ -x $VENV/bin/python ]] && cassandra_cluster_ready && up=up ;;
        ferretdb) [[ -x $VENV/bin/python ]] && ferretdb_ready && up=up ;;
        mariadb-tls) command -v mariadb >/dev/null && [[ -f $TLS_DIR/ca.pem ]] && mariadb_tls_ready && up=up ;;
        ferretdb-tls) [[ -x $VENV/bin/python && -f $TLS_DIR/ca.pem ]] && ferretdb_tls_ready && up=up ;;
        esac
        printf '%-13s %s\n' "$s" "$up"
        [[ $up == up ]] || rc=3
    done
    return $rc
}

main() {
    local cmd=start
    case ${1:-} in
    status | stop | start) cmd=$1; shift ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; return 0 ;;
    esac
    local names=() n
    for n in "$@"; do names+=("$(canonical "$n")"); done
    ((${#names[@]})) || names=("${ALL_SERVICES[@]}")
    # keep the canonical order, drop duplicates
    local selected=()
    for n in "${ALL_SERVICES[@]}"; do
        if [[ " ${names[*]} " == *" $n "* ]]; then selected+=("$n"); fi
    done

    case $cmd in
    status)
        status "${selected[@]}"
        return
        ;;
    stop)
        local i
        for ((i = ${#selected[@]} - 1; i >= 0; i--)); do "${selected[i]//-/_}_stop"; done
        return 0
        ;;
    esac

    local t0=$SECONDS
    mkdir -p "$SVC"
    ensure_packages "${selected[@]}"
    if [[ " ${selected[*]} " == *" cassandra"* || " ${selected[*]} " == *" ferretdb"* ]]; then
        ensure_venv
    fi
    if [[ " ${selected[*]} " == *"-tls "* || " ${selected[*]} " == *" cassandra "* ]]; then
        tls_certs
    fi
    # Cassandra first: it takes longest, and boots while the others start.
    local s
    for s in cassandra redis redis-cluster mariadb mariadb-tls postgres ferretdb ferretdb-tls cassandra-cluster; do
        if [[ " ${selected[*]} " == *" $s "* ]]; then "${s//-/_}_start"; fi
    done
    for s in "${selected[@]}"; do
        if [[ " ${FAILED[*]} " != *" $s "* ]]; then "${s//-/_}_wait"; fi
    done
    if ((${#FAILED[@]})); then
        log "FAILED: ${FAILED[*]} (logs under $SVC)"
        return 1
    fi
    log "all up: ${selected[*]} ($((SECONDS - t0)) s)"
    env_lines "${selected[@]}"
}

main "$@"
