# SaveAction Runner. `make run` starts everything on a laptop; `make test` runs every test.
GO       ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN      := bin/saveaction
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# staticcheck, pinned: v0.8.2 is staticcheck 2026.2.2, which knows Go 1.26.
# `make lint` installs it from the Go module proxy into bin/tools when missing.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK         ?= $(CURDIR)/bin/tools/staticcheck
# protoactor-go's cluster code has data races of its own: ./cluster (the only
# package that imports it) is tested without -race; every other package with.
RACE_PKGS = $$($(GO) list ./... | grep -v '/runner/cluster$$')

.PHONY: all build deps test-deps bench-deps run test deploy-test bench bench-go scale proto lint tools clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/saveaction

## deps: Chromium and ffmpeg from the distribution, when missing (never a downloaded browser)
deps:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 && [ -z "$$CHROME_BIN" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and ffmpeg (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ffmpeg >/dev/null; \
	  else \
	    echo "Chromium is missing: install it (e.g. sudo apt-get install -y chromium ffmpeg) or set CHROME_BIN"; exit 1; \
	  fi; \
	fi

# tools-for installs, as root with apt-get, the Debian package of each
# command:package in $(1) whose command is missing; otherwise it says what
# to install, and fails when $(2) is "required".
define tools-for
	@missing=""; for pair in $(1); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif [ "$(2)" = required ]; then echo "missing:$$missing (sudo apt-get install -y$$missing)"; exit 1; \
	  else echo "missing:$$missing (sudo apt-get install -y$$missing): the tests that need them are skipped"; fi; \
	fi
endef

## test-deps: etcd (the cluster tests' own) and promtool/prometheus (the dashboard and alert tests), when missing
test-deps: deps
	$(call tools-for,etcd:etcd-server promtool:prometheus,optional)

## bench-deps: wrk, the load generator of make bench, when missing
bench-deps: deps
	$(call tools-for,wrk:wrk,required)

## run: migrations, API and worker in one process, with a token printed (dev mode)
run: deps build
	./$(BIN) dev

## test: unit and integration tests against real PostgreSQL, Redis and Chromium
test: test-deps
	$(GO) vet ./...
	@# Compile every test binary in parallel, then run the packages one at a
	@# time: the Chromium-heavy packages would otherwise fight over 2 cores.
	$(GO) test -race -count=1 -exec /bin/true $(RACE_PKGS) >/dev/null
	$(GO) test -race -count=1 -p 1 -timeout 25m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 5m ./cluster/

## deploy-test: compose.yaml and deploy/Dockerfile run for real in a private dockerd (needs root, docker.io, debootstrap)
deploy-test:
	timeout --kill-after=60 3000 deploy/docker/deploy-test.sh

## bench: the API against a bare floor (wrk), a run's start-up and throughput, side by side; writes BENCHMARKS.md.
## BENCH_FLAGS e.g. "-before /path/to/main/saveaction -reps 3" (go run ./internal/bench -h lists them)
bench: bench-deps
	$(GO) run ./internal/bench $(BENCH_FLAGS)

## bench-go: the go test benchmarks (replay per action, browser start-up, API endpoints in process)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./browser/ ./http/ ./actors/

## scale: the fleet at scale, simulated (docs/SCALING.md): 100 workers, churn of every kind, then the checks
## (needs root for the private PostgreSQL cluster; override with SCALE_FLAGS)
SCALE_FLAGS ?= --workers 100 --slots 2 --api 2 --rate 20 --duration 2m --churn --drain 3m
scale: build
	./$(BIN) bench fleet $(SCALE_FLAGS)

## proto: regenerate the protobuf messages that cross actor nodes
proto:
	protoc --go_out=. --go_opt=paths=source_relative actors/messages.proto

## lint: go vet, gofmt and staticcheck (installed into bin/tools on first use)
lint: $(STATICCHECK)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(STATICCHECK) ./...

## tools: the pinned staticcheck, into bin/tools
tools: $(STATICCHECK)

$(CURDIR)/bin/tools/staticcheck:
	GOBIN=$(CURDIR)/bin/tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf bin
