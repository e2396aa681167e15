# anysched — build, test, benchmark, fuzz and demo targets.
# `make demo` and `make test` are the README's two set-up commands.

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
TESTFLAGS ?= -race -count=1 -timeout 9m

.PHONY: all build test lint bench fuzz demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: lint
	$(GO) test $(TESTFLAGS) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# A short run of every fuzz target; FUZZTIME=1m for the full check.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The captures' verdicts offline, then the live veth test bed (needs root).
demo: build
	ANYSCHED=$(BIN)/anysched ./scripts/demo.sh
	ANYSCHED=$(BIN)/anysched ANYNODE=$(BIN)/anynode ANYCLIENT=$(BIN)/anyclient ./scripts/demo_testbed.sh

clean:
	rm -rf $(BIN)
