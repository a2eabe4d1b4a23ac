# SaveAction Runner. `make run` starts everything on a laptop; `make test` runs every test.
GO       ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN      := bin/saveaction
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# protoactor-go's cluster code has data races of its own; we use its actor
# and remote packages only, which pass -race, so every package runs with it.

.PHONY: all build run test test-unit bench proto lint clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/saveaction

## run: migrations, API and worker in one process, with a token printed (dev mode)
run: build
	./$(BIN) dev

## test: unit and integration tests against real PostgreSQL, Redis and Chromium
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

## bench: benchmarks (replay per action, browser start-up, API endpoints)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./browser/ ./http/ ./actors/

## proto: regenerate the protobuf messages that cross actor nodes
proto:
	protoc --go_out=. --go_opt=paths=source_relative actors/messages.proto

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf bin
