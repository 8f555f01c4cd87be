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
  echo "NATS $(nats-server --version | awk '{print $2}') with JetStream on 127.0.0.1:$port (pid $pid)"
}

stop_services() {
  local pid dir
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
  for dir in "${scratch_dirs[@]}"; do
    rm -rf "$dir"
  done
}
