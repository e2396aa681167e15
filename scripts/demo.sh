#!/usr/bin/env bash
# demo.sh — what the router would do with real clients (make demo).
#
# Runs `bin/anysched inspect` over every capture committed in
# parser/testdata/ (real ClientHellos recorded by scripts/capture/capture.sh)
# and prints, per flow, whether the fast path pins it as a legacy flow or
# stores nothing because the client announced migration_support, and why.
# The packets go through the same parser and ClientHello reassembler as the
# fast path. Needs bin/anysched (make build); uses nothing else.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
anysched=${ANYSCHED:-$repo/bin/anysched}
testdata=$repo/parser/testdata

if [[ ! -x $anysched ]]; then
	echo "demo.sh: $anysched not found; run 'make build' first" >&2
	exit 2
fi
shopt -s nullglob
captures=("$testdata"/*.pcap "$testdata"/*.pcapng)
if ((${#captures[@]} == 0)); then
	echo "demo.sh: no captures in $testdata" >&2
	exit 1
fi

# describe FILE: the one-line description of a capture from captures.md.
describe() {
	local name
	name=$(basename "$1")
	[[ -f $testdata/captures.md ]] || return 0
	sed -n "s/^## \`$name\` — //p" "$testdata/captures.md" | head -1
}

total=0
pinned=0
migrating=0
for capture in "${captures[@]}"; do
	name=$(basename "$capture")
	echo "=== $name"
	desc=$(describe "$capture")
	if [[ -n $desc ]]; then
		echo "    $desc"
	fi
	echo
	"$anysched" inspect --pcap "$capture" | sed 's/^/    /'
	echo
	# Count from the JSON view so the summary does not depend on the table.
	while IFS= read -r line; do
		total=$((total + 1))
		if [[ $line == *'"legacy":true'* ]]; then
			pinned=$((pinned + 1))
		elif [[ $line == *'"migration_support":true'* ]]; then
			migrating=$((migrating + 1))
		fi
	done < <("$anysched" inspect --json --pcap "$capture")
done

echo "=== summary"
echo "    ${#captures[@]} captures, $total client flows to port 443"
echo "    $pinned pinned as legacy (the router keeps a pin-table entry for each)"
echo "    $migrating migration-capable (the router stores nothing for them)"
echo "    $((total - pinned - migrating)) without a ClientHello to act on (they follow the table)"
