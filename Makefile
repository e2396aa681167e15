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

# The side-by-side report (bench/): packet scenarios on the veth bed (root)
# and the Go micro-benchmarks; writes bench/REPORT.md, bench/plots/ and
# bench/results/. BENCHFLAGS passes more flags (go run ./bench/cmd/anybench -h).
bench: build
	$(GO) run ./bench/cmd/anybench --anysched $(BIN)/anysched --micro-benchtime $(BENCHTIME) $(BENCHFLAGS)

# A short run of every fuzz target; FUZZTIME=1m for the full check.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The captures' verdicts offline, then the live veth test bed (needs root).
demo: build
	./scripts/demo.sh
	./scripts/demo_testbed.sh

clean:
	rm -rf $(BIN)
