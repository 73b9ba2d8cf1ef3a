# Billing service. `make run` serves on :8080 with SQLite; `make test` runs
# vet and the race-enabled test suite.

GO            ?= go
BIN           := bin/billing
REDOCLY       := npx --yes @redocly/cli@2.77.0
export GOFLAGS := -buildvcs=false

.PHONY: all generate check-generated build run test lint bench tools clean

all: build

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen/...

## check-generated: fail when gen/, go.mod or go.sum differ from what the commands produce
check-generated: generate
	$(GO) mod tidy
	git diff --exit-code -- gen go.mod go.sum

## build: compile the service binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/billing

## run: serve on :8080 with SQLite (billing.db), creating a local master key and admin token once
run: build
	BILLING_DEV=1 ./$(BIN) serve

## test: go vet and the race-enabled tests over everything
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## lint: gofmt, vet and the OpenAPI linter
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(REDOCLY) lint openapi.yaml

## bench: the benchmark program (see README, Performance)
bench:
	$(GO) run ./cmd/billing-bench $(BENCH_FLAGS)

## tools: install stripe-mock into GOPATH/bin (the tests also build it on demand)
tools:
	$(GO) install github.com/stripe/stripe-mock

clean:
	rm -rf bin
