#!/bin/sh
# testbed.sh — build, show or remove the anysched veth test bed: the bed the
# Go tests use (internal/testbed), through its command
# internal/testbed/cmd/testbed, built here on each call (cached by go).
#
# Usage: scripts/testbed.sh [flags] up|down|status      (as root)
#        scripts/testbed.sh [flags] delay [nodeI=DURATION ...]
#        scripts/testbed.sh --help                       (flags)
# Environment: PREFIX (default anysched), NODES (default 2), VIP4 (default
# 10.200.0.1), VIP6 (default fd00:200::1), ROUTER_QUEUES (default 1); GO
# (default go). A node delay: `up --delay node2=20ms` (stays in the
# foreground; SIGINT/SIGTERM takes the bed down); while it runs,
# `delay node2=40ms` changes it and prints every node's delay (through
# /run/anysched-testbed/PREFIX.sock). `down` is idempotent.
# Exit codes: 0 ok, 1 failure, 2 bad usage.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/bin/testbed
(cd "$repo" && "${GO:-go}" build -o "$bin" ./internal/testbed/cmd/testbed) || {
	echo "testbed.sh: building internal/testbed/cmd/testbed failed" >&2
	exit 1
}
exec "$bin" "$@"
