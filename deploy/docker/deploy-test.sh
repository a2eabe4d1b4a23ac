#!/usr/bin/env bash
# make deploy-test: compose.yaml and deploy/Dockerfile run for real.
#
# Starts a private dockerd (vfs storage, no iptables, its own data-root,
# exec-root and socket), makes the images the stack needs from Debian (no
# image can be pulled here), builds our image from deploy/Dockerfile, brings
# compose.yaml up with deploy/docker/compose.test.yaml over it, and runs the
# checks of stack_test.go against it. Everything it started is torn down on
# exit, failure or signal: containers, networks, volumes, the daemon.
#
# Cached between runs under SAVEACTION_DEPLOY_CACHE (~/.cache/saveaction-deploy):
# the debootstrap tarball, the compose binary and the daemon's images (its
# data-root); delete that folder to run from nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH=/usr/local/go/bin:$PATH

CACHE=${SAVEACTION_DEPLOY_CACHE:-$HOME/.cache/saveaction-deploy}
COMPOSE_VERSION=v5.6.0
MIRROR=${SAVEACTION_DEPLOY_MIRROR:-http://deb.debian.org/debian}
PROJECT=sadeploy
# The Debian package's client: it speaks the daemon's API (1.41) and has
# BuildKit built in, which the Dockerfile's cache mounts need.
DOCKER_CLI=${SAVEACTION_DEPLOY_DOCKER:-/usr/bin/docker}
mkdir -p "$CACHE"

# One run at a time on a machine: they would share the cached data-root.
exec 9>"$CACHE/lock"
flock -w 1800 9

T0=$(date +%s)
declare -a TIMINGS=()
step_start=$T0
step() { # step NAME: records how long the previous step took
  local now; now=$(date +%s)
  if [ -n "${step_name:-}" ]; then TIMINGS+=("$(printf '%-28s %4ds' "$step_name" $((now - step_start)))"); fi
  step_name=$1; step_start=$now
  echo "== $1 ($(date -u +%H:%M:%S))"
}
report() {
  local now; now=$(date +%s)
  [ -n "${step_name:-}" ] && TIMINGS+=("$(printf '%-28s %4ds' "$step_name" $((now - step_start)))")
  echo "== timings"
  for t in "${TIMINGS[@]}"; do echo "  $t"; done
  echo "  total                        $(( $(date +%s) - T0 ))s"
}

WORK=$(mktemp -d /tmp/saveaction-deploy.XXXXXX)
SOCK=$WORK/docker.sock
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$WORK/docker-config
export DOCKER_BUILDKIT=1
export COMPOSE_PROJECT_NAME=$PROJECT
DOCKERD_PID=""
GOPROXY_PID=""
docker() { "$DOCKER_CLI" "$@"; }
compose() { "$DOCKER_CLI" compose -f compose.yaml -f deploy/docker/compose.test.yaml "$@"; }

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$DOCKERD_PID" ] && [ $rc -ne 0 ]; then
    echo "== logs of the stack (failure)"
    compose ps -a 2>&1 | tail -n 30
    compose logs --no-color --tail 60 2>&1 | tail -n 400
  fi
  step teardown
  if [ -n "$DOCKERD_PID" ]; then
    timeout 120 "$DOCKER_CLI" compose -f compose.yaml -f deploy/docker/compose.test.yaml down -v --remove-orphans -t 5 >/dev/null 2>&1
    # Anything left by an interrupted step (build containers, dangling volumes).
    docker ps -aq | xargs -r "$DOCKER_CLI" rm -fv >/dev/null 2>&1
    docker volume prune -f >/dev/null 2>&1
    docker network prune -f >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$DOCKERD_PID" 2>/dev/null
  fi
  [ -n "$GOPROXY_PID" ] && kill "$GOPROXY_PID" 2>/dev/null
  # containerd-shims and mounts of the exec-root go with the daemon.
  grep " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
  report
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for cmd in dockerd debootstrap "$DOCKER_CLI" go flock; do
  command -v "$cmd" >/dev/null || { echo "deploy-test: $cmd is missing (apt-get install -y docker.io debootstrap)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "deploy-test: needs root (dockerd, debootstrap)"; exit 1; }

step "compose $COMPOSE_VERSION"
COMPOSE_BIN=$CACHE/docker-compose-$COMPOSE_VERSION
if [ ! -x "$COMPOSE_BIN" ]; then
  # Compose is not packaged for Debian: build it from its Go module. `go
  # install` refuses a module whose go.mod has exclude directives, so build
  # a writable copy of it.
  dir=$(go mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "deploy-test: go mod download of compose failed"; exit 1; }
  cp -r "$dir" "$WORK/compose-src" && chmod -R u+w "$WORK/compose-src"
  (cd "$WORK/compose-src" && go build -trimpath -ldflags "-w -X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" -o "$COMPOSE_BIN.tmp" ./cmd)
  mv "$COMPOSE_BIN.tmp" "$COMPOSE_BIN"
fi
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -s "$COMPOSE_BIN" "$DOCKER_CONFIG/cli-plugins/docker-compose"

step "dockerd"
DATA_ROOT=$CACHE/docker
mkdir -p "$DATA_ROOT" "$WORK/exec"
dockerd --storage-driver=vfs --iptables=false --ip-masq=false \
  --data-root="$DATA_ROOT" --exec-root="$WORK/exec" --pidfile="$WORK/dockerd.pid" \
  -H "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})' || { tail -n 30 "$WORK/dockerd.log"; exit 1; }
docker compose version
# A run interrupted before its teardown may have left its stack.
compose down -v --remove-orphans -t 1 >/dev/null 2>&1 || true

# image_current NAME KEY: the image exists and was built from KEY.
image_current() { [ "$(docker image inspect -f '{{index .Config.Labels "saveaction.deploy.key"}}' "$1" 2>/dev/null)" = "$2" ]; }
# dir_key DIR...: a hash of the files that make an image.
dir_key() { (cd "$ROOT" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
# local_image NAME DIR: builds deploy/docker/images/DIR as NAME when it changed.
local_image() {
  local name=$1 dir=deploy/docker/images/$2 key
  key=$(dir_key "$dir")-$(docker image inspect -f '{{.Id}}' debian:bookworm-slim | cut -c8-19)
  if image_current "$name" "$key"; then echo "  $name: up to date"; return; fi
  docker build -q --network host --label "saveaction.deploy.key=$key" -t "$name" "$dir" >/dev/null
  echo "  $name: built"
}

step "base image"
TARBALL=$CACHE/bookworm-minbase.tar.gz
if [ ! -s "$TARBALL" ]; then
  # The Debian mirror of this machine's apt sources; the rootfs is made once.
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log"; exit 1; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" --numeric-owner -c . | gzip -1 >"$TARBALL.tmp"
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$WORK/rootfs"
fi
mkdir -p "$WORK/base/ca-certificates" "$WORK/base/certs"
cp deploy/docker/images/base/Dockerfile "$WORK/base/"
cp -L /usr/local/share/ca-certificates/*.crt "$WORK/base/ca-certificates/" 2>/dev/null || true
cp -L /etc/ssl/certs/ca-certificates.crt "$WORK/base/certs/"
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
  "$MIRROR" "$MIRROR" >"$WORK/base/sources.list"
basekey=$(cat "$TARBALL.key" 2>/dev/null || true)
tarkey=$(stat -c %s-%Y "$TARBALL")
if [ "$basekey" != "$tarkey" ] || ! docker image inspect saveaction-deploy/minbase >/dev/null 2>&1; then
  docker import "$TARBALL" saveaction-deploy/minbase >/dev/null
  echo "$tarkey" >"$TARBALL.key"
fi
key=$(cat "$WORK"/base/Dockerfile "$WORK"/base/sources.list "$WORK"/base/certs/* "$WORK"/base/ca-certificates/* 2>/dev/null | sha256sum | cut -c1-16)-$(docker image inspect -f '{{.Id}}' saveaction-deploy/minbase | cut -c8-19)
if image_current debian:bookworm-slim "$key"; then
  echo "  debian:bookworm-slim: up to date"
else
  docker build -q --network host --build-arg FROM_IMAGE=saveaction-deploy/minbase \
    --label "saveaction.deploy.key=$key" -t debian:bookworm-slim "$WORK/base" >/dev/null
  echo "  debian:bookworm-slim: built from debootstrap minbase"
fi

step "service images"
# The official names compose.yaml uses, made here from Debian's packages.
local_image postgres:15 postgres
local_image redis:7.0 redis
local_image quay.io/coreos/etcd:v3.4.23 etcd
local_image prom/prometheus:v2.42.0 prometheus
local_image saveaction-deploy/site site
# golang:1.26-bookworm: this machine's Go on the base.
gokey=$(go env GOVERSION)-$(docker image inspect -f '{{.Id}}' debian:bookworm-slim | cut -c8-19)
if image_current golang:1.26-bookworm "$gokey"; then
  echo "  golang:1.26-bookworm: up to date"
else
  goroot=$(go env GOROOT)
  docker build -q --label "saveaction.deploy.key=$gokey" -t golang:1.26-bookworm \
    -f "$ROOT/deploy/docker/images/golang/Dockerfile" "$goroot" >/dev/null
  echo "  golang:1.26-bookworm: built from $goroot ($(go env GOVERSION))"
fi
echo "  grafana/grafana: not made (Debian has no grafana package and its own repository is out of reach); the stack runs without it"

step "saveaction image"
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
if [ "${SAVEACTION_DEPLOY_GO_BUILD:-host}" = image ]; then
  # The Dockerfile's own build stage. Its module proxy is this machine's
  # module cache, served on loopback (the build runs on the host network):
  # a cold build downloads nothing the machine already has.
  go mod download
  GOPROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 "$GOPROXY_PORT" --directory "$(go env GOMODCACHE)/cache/download" >/dev/null 2>&1 &
  GOPROXY_PID=$!
  buildargs=(--build-arg GOPROXY="http://127.0.0.1:$GOPROXY_PORT")
  echo "  binary: built by deploy/Dockerfile's build stage"
else
  # The binary built on the host (its Go build cache is warm; a cold build
  # inside the image takes over 20 minutes on a loaded 2-core machine), put
  # in as BINARY; SAVEACTION_DEPLOY_GO_BUILD=image uses the build stage.
  mkdir -p "$WORK/binary"
  go build -ldflags "-s -w -X main.version=$VERSION" -o "$WORK/binary/saveaction" ./cmd/saveaction
  printf 'FROM scratch\nCOPY saveaction /out/saveaction\n' >"$WORK/binary/Dockerfile"
  docker build -q -t saveaction-deploy/binary "$WORK/binary" >/dev/null
  buildargs=(--build-arg BINARY=saveaction-deploy/binary)
  echo "  binary: built on the host ($(go env GOVERSION))"
fi
docker build --network host --progress plain "${buildargs[@]}" --build-arg VERSION="$VERSION" \
  -f deploy/Dockerfile -t saveaction-runner:local . >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log"; exit 1; }
[ -n "$GOPROXY_PID" ] && kill "$GOPROXY_PID" 2>/dev/null; GOPROXY_PID=""
IMAGE_SIZE=$(docker image inspect -f '{{.Size}}' saveaction-runner:local)
echo "  saveaction-runner:local: $((IMAGE_SIZE / 1000000)) MB"

step "stack up"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
# Two consecutive free ports for the two API nodes.
p=$(python3 - <<'PY'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("0.0.0.0", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("0.0.0.0", port + 1))
    except OSError:
        continue
    print(port); break
PY
)
export SAVEACTION_API_PORTS="$p-$((p + 1))" SAVEACTION_PROMETHEUS_PORT=$(free_port) SAVEACTION_GRAFANA_PORT=$(free_port)
# migrate is not waited for by name (a one-shot); the API nodes wait for it.
compose up -d --no-build --wait --wait-timeout 300 api worker-1 worker-2 worker-3 prometheus site
compose ps

step "checks"
export SAVEACTION_DEPLOY_API="http://127.0.0.1:$p,http://127.0.0.1:$((p + 1))"
export SAVEACTION_DEPLOY_PROMETHEUS="http://127.0.0.1:$SAVEACTION_PROMETHEUS_PORT"
export SAVEACTION_DEPLOY_COMPOSE="$DOCKER_CLI compose -f compose.yaml -f deploy/docker/compose.test.yaml"
export SAVEACTION_DEPLOY_DOCKER=$DOCKER_CLI
go test -count=1 -v -timeout 12m -tags deploystack -run . ./deploy/docker/
echo "== image saveaction-runner:local: $((IMAGE_SIZE / 1000000)) MB"
