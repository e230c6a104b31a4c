# Shared by scripts/up, scripts/down, scripts/test: make sure the services are there.
# Sourced, not run. Everything started here is recorded in $RUN_DIR/*.pid.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${TASKNODE_RUN_DIR:-$REPO/.run}"
mkdir -p "$RUN_DIR"

# The local S3 store: s3s-fs from crates.io (MinIO's API and default keys; see README).
S3S_VERSION="0.14.1"
S3_HOST=127.0.0.1
S3_PORT=9000
S3_ACCESS_KEY=minioadmin
S3_SECRET_KEY=minioadmin

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds what
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  die "$4 did not open $1:$2 within $3 s"
}

# Is the process in pid file $1 alive?
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ensure_postgres() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start \
      || die "could not start PostgreSQL"
    for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
    pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL did not come up on 127.0.0.1:5432"
  fi
}

ensure_rabbitmq() {
  if ! port_open 127.0.0.1 5672; then
    log "starting RabbitMQ"
    rabbitmq-server -detached || die "could not start RabbitMQ"
    wait_port 127.0.0.1 5672 90 "RabbitMQ"
  fi
  rabbitmqctl await_startup >/dev/null 2>&1 || true
}

# Install a Debian package as root (or through sudo).
apt_install() { # package…
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

# HAProxy (Debian package) for the load balancer in front of the nodes.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 && return 0
  log "installing haproxy (Debian package)"
  apt_install haproxy
  command -v haproxy >/dev/null 2>&1 || die "could not install haproxy"
}

# What the web console's browser tests need: Debian's Chromium, and playwright-core (npm, the
# version in console/tests/package-lock.json) to drive it. Nothing downloads a browser.
ensure_console_tests() {
  if ! [ -x /usr/bin/chromium ]; then
    log "installing chromium (Debian package) for the console's browser tests"
    apt_install chromium fonts-dejavu-core || die "could not install chromium"
  fi
  if ! [ -d "$REPO/console/tests/node_modules/playwright-core" ] \
     || [ "$REPO/console/tests/package-lock.json" -nt "$REPO/console/tests/node_modules/.package-lock.json" ]; then
    log "installing playwright-core (npm) for the console's browser tests"
    (cd "$REPO/console/tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
      || die "npm ci in console/tests failed"
  fi
}

# The Python SDK's tests: a venv in $RUN_DIR/sdk-venv with pytest, the thumbnail example's
# requirements (Pillow) and the SDK itself,
# installed from sdk/python as a user would (`pip install ./sdk/python`), again each run.
PYTEST_VERSION=8.3.4
ensure_python_sdk() {
  local venv="$RUN_DIR/sdk-venv"
  if ! [ -x "$venv/bin/pytest" ]; then
    log "making a venv for the Python SDK's tests (pytest $PYTEST_VERSION from PyPI)"
    python3 -m venv "$venv" || die "python3 -m venv failed"
    "$venv/bin/pip" install --quiet "pytest==$PYTEST_VERSION" || die "pip install pytest failed"
  fi
  "$venv/bin/pip" install --quiet -r "$REPO/examples/python-thumbnails/requirements.txt" \
    || die "pip install of the thumbnail example's requirements failed"
  "$venv/bin/pip" install --quiet --force-reinstall --no-deps "$REPO/sdk/python" \
    || die "pip install ./sdk/python failed"
}

# Write the HAProxy config for N nodes (line protocol on 127.0.0.1:7001.., HTTP on
# 127.0.0.1:8001..) to $RUN_DIR/haproxy.cfg: config/haproxy.cfg plus server lines for each
# node past 3 at its `more nodes` marks.
haproxy_config() { # N -> path
  local n="$1" f="$RUN_DIR/haproxy.cfg" k tcp="" http=""
  for ((k = 4; k <= n; k++)); do
    tcp+="    server node$k 127.0.0.1:$((7000 + k)) check\n"
    http+="    server node$k 127.0.0.1:$((8000 + k)) check\n"
  done
  awk -v tcp="$tcp" -v http="$http" '
    /# more nodes \(tcp\)/ { printf "%s", tcp }
    /# more nodes \(http\)/ { printf "%s", http }
    { print }' "$REPO/config/haproxy.cfg" >"$f"
  echo "$f"
}

install_s3s() {
  if command -v s3s-fs >/dev/null 2>&1 && s3s-fs --version 2>/dev/null | grep -q "$S3S_VERSION"; then
    return 0
  fi
  log "installing the local S3 server (s3s-fs $S3S_VERSION) from crates.io; about 3 minutes, once"
  cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --quiet
}

# Start the local S3 store on 127.0.0.1:9000 unless something already serves there
# (a MinIO, or one we started earlier). Sets S3_STARTED=1 when this call started it.
S3_STARTED=0
ensure_s3() {
  if port_open "$S3_HOST" "$S3_PORT"; then
    return 0
  fi
  install_s3s
  mkdir -p "$RUN_DIR/s3-data"
  log "starting the S3 store on http://$S3_HOST:$S3_PORT (data in $RUN_DIR/s3-data)"
  nohup s3s-fs --host "$S3_HOST" --port "$S3_PORT" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    "$RUN_DIR/s3-data" >"$RUN_DIR/s3.log" 2>&1 &
  echo $! >"$RUN_DIR/s3.pid"
  S3_STARTED=1
  wait_port "$S3_HOST" "$S3_PORT" 30 "the S3 store"
}

stop_pidfile() { # pidfile name
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# PING a node; succeeds when it answers with a pong.
ping_node() { # host port
  local line
  exec 3<>"/dev/tcp/$1/$2" || return 1
  printf 'PING\n' >&3
  IFS= read -r -t 5 line <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ "$line" == *'"pong":true'* ]]
}
