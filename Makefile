# anysched — build, test, benchmark, fuzz and demo targets.
# `make demo` and `make test` are the README's two set-up commands.

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
TESTFLAGS ?= -race -count=1 -timeout 9m

DEPS_LIST := deps/debian.txt

.PHONY: all deps build test lint bench fuzz demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# Installs the Debian packages of $(DEPS_LIST) that are missing (apt-get,
# as root), or names the command to run. Uses only Essential tools (sed,
# grep, dpkg-query), so it works on a minimal Debian. NODEPS=1 skips it
# (a non-Debian machine that has the tools another way).
deps:
ifeq ($(NODEPS),)
	@pkgs=$$(sed -n 's/^\([a-z0-9][a-z0-9.+-]*\)[[:space:]].*/\1/p' $(DEPS_LIST)); \
	if ! command -v dpkg-query >/dev/null; then \
		echo "make deps: not a Debian system; install the equivalents of:" $$pkgs; \
		echo "  then run with NODEPS=1 (e.g. make test NODEPS=1)"; exit 1; fi; \
	missing=; for p in $$pkgs; do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -qx 'install ok installed' || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make deps: missing Debian packages:$$missing"; \
		echo "  as root run: apt-get update && apt-get install -y --no-install-recommends$$missing"; \
		echo "  (or: sudo make deps)"; exit 1; fi; \
	echo "make deps: installing$$missing"; \
	apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null
endif

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint
	$(GO) test $(TESTFLAGS) ./...

# The side-by-side report (bench/): packet and connection scenarios on the
# veth bed (root; HAProxy from deps) and the Go micro-benchmarks; writes
# bench/REPORT.md, bench/plots/ and bench/results/. BENCHFLAGS passes more
# flags (go run ./bench/cmd/anybench -h).
bench: deps build
	$(GO) run ./bench/cmd/anybench --anysched $(BIN)/anysched --anynode $(BIN)/anynode --anyclient $(BIN)/anyclient \
		--micro-benchtime $(BENCHTIME) $(BENCHFLAGS)

# A short run of every fuzz target; FUZZTIME=1m for the full check.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# The captures' verdicts offline, then the live veth test bed (needs root).
# One go build for the three binaries and the bed's command: each go
# invocation costs seconds on a busy machine, and the demo has 2 minutes.
demo: deps
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/... ./internal/testbed/cmd/testbed
	ANYSCHED=$(BIN)/anysched ./scripts/demo.sh
	ANYSCHED=$(BIN)/anysched ANYNODE=$(BIN)/anynode ANYCLIENT=$(BIN)/anyclient TESTBED=$(BIN)/testbed ./scripts/demo_testbed.sh

clean:
	rm -rf $(BIN)
