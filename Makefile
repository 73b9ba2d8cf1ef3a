# Billing service. `make demo` tries it with stripe-mock as Stripe; `make run`
# serves on :8080 with SQLite; `make test` runs vet and the race-enabled test
# suite.

GO            ?= go
BIN           := bin/billing
REDOCLY       := npx --yes @redocly/cli@2.77.0
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
GOTESTSUM     := $(GO) run gotest.tools/gotestsum
# TEST_FORMAT is gotestsum's: pkgname-and-test-fails prints a line as each
# package finishes; testname prints one per test.
TEST_FORMAT   ?= pkgname-and-test-fails
TEST_JSON     ?= bin/test-output.json
SLOWEST       ?= 25
export GOFLAGS := -buildvcs=false

.PHONY: all generate check-generated check-client-deps build run demo test slowest lint bench tools clean

all: build

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen/...

## check-generated: fail when gen/, go.mod or go.sum differ from what the commands produce
check-generated: generate
	$(GO) mod tidy
	git diff --exit-code -- gen go.mod go.sum

## check-client-deps: fail when client/ or examples/ import anything outside the standard library, or the binary links package testing
check-client-deps:
	@deps=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./client/... ./examples/... \
		| grep -v '^github.com/stackfordevs/billing/\(client\|examples\)' || true); \
	if [ -n "$$deps" ]; then echo "client/ must depend on the standard library only, but imports:"; echo "$$deps"; exit 1; fi
	@if $(GO) list -deps ./cmd/billing | grep -qx testing; then echo "the billing binary must not link package testing"; exit 1; fi

## build: compile the service binary into bin/, with its version
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/billing

## run: serve on :8080 with SQLite (billing.db), creating a local master key and admin token once
run: build
	BILLING_DEV=1 ./$(BIN) serve

## demo: serve in development mode with stripe-mock as Stripe and a ready project (honours BILLING_ADDR)
demo: build
	./$(BIN) demo

## test: go vet and the race-enabled tests over everything, a line per package as it finishes
test:
	$(GO) vet ./...
	@mkdir -p $(dir $(TEST_JSON))
	$(GOTESTSUM) --format $(TEST_FORMAT) --jsonfile $(TEST_JSON) -- -race -count=1 -timeout 20m ./...

## slowest: the slowest tests of the last `make test`
slowest:
	@$(GOTESTSUM) tool slowest --jsonfile $(TEST_JSON) --threshold 500ms | awk 'NR <= $(SLOWEST)'

## lint: gofmt, vet, the client's dependencies and the OpenAPI linter
lint: check-client-deps
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
