#!/usr/bin/env bash
# demo_testbed.sh — the live half of `make demo`: the router on the veth
# test bed with real TLS clients and nodes.
#
# Builds anysched, a node server and a client (scripts/demo/), brings up
# the veth bed (scripts/testbed.sh, 4 nodes in two pools, PREFIX demo<PID>),
# runs `anysched run` on AF_XDP in the router namespace, a TLS server on
# the VIP in every node namespace (direct server return) and, from the
# client namespace, legacy (crypto/tls) and migration-capable (uTLS with
# migration_support) connections. It then drains a node with a config
# reload (SIGHUP) and shows that established connections stay on their
# node while new ones follow the new table, and prints the router's
# counters and the state claim: legacy flows are pinned, migration-capable
# flows cost the router nothing.
#
# Usage: scripts/demo_testbed.sh            (as root)
# Environment: ANYSCHED (the router binary; default bin/anysched from
# `make build`, built here if missing), GO (default go), GRACE (grace
# period in seconds, default 5).
# Exit codes: 0 everything worked, 1 something did not (the message says
# what), 2 not root or bad environment. The bed is torn down on every exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
ANYSCHED=${ANYSCHED:-$repo/bin/anysched}
GRACE=${GRACE:-5}
METRICS=127.0.0.1:9300
VIP4=10.200.0.1
VIP6=fd00:200::1
NODES=4
export PREFIX=demo$$ NODES VIP4 VIP6

die() {
	echo "demo_testbed.sh: FAILED: $*" >&2
	exit 1
}

case "${1:-}" in
-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
'') ;;
*) echo "demo_testbed.sh: unexpected argument '$1' (try --help)" >&2; exit 2 ;;
esac
case "$GRACE" in '' | *[!0-9]* | 0) echo "demo_testbed.sh: GRACE=$GRACE: want whole seconds, at least 1" >&2; exit 2 ;; esac
if [[ $(id -u) != 0 ]]; then
	echo "demo_testbed.sh: needs root (it creates network namespaces, veth links and attaches XDP); try: sudo make demo" >&2
	exit 2
fi
for tool in ip "$GO"; do
	command -v "$tool" >/dev/null || { echo "demo_testbed.sh: $tool not found" >&2; exit 2; }
done

started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/anysched-demo.XXXXXX")
bed_up=false
router_pid=
node_pids=()
HOLD_PID=

# cleanup runs on every exit: stop what we started (the router detaches
# its XDP program on SIGTERM), then remove every namespace of the bed.
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	set +e
	if [[ -n ${HOLD_PID:-} ]]; then kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null; fi
	for pid in $router_pid "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in $router_pid "${node_pids[@]}"; do stopped "$pid" 10 || kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	# Anything else still running inside the bed's namespaces was started
	# by this script too: stop it, or the namespaces outlive `down`.
	for ns in $(ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 { print $1 }'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	if $bed_up; then "$repo/scripts/testbed.sh" down || { echo "demo_testbed.sh: testbed.sh down failed" >&2; rc=1; }; fi
	if ((rc != 0)) && [[ -s $work/router.log ]]; then
		echo "--- last lines of the router's log:" >&2
		tail -n 15 "$work/router.log" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
# stopped PID SECONDS: poll until our child PID has exited (or is a zombie
# waiting for `wait`); false if it is still running after SECONDS.
stopped() {
	local deadline=$((SECONDS + $2)) state
	while :; do
		state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 0
		[[ -z $state || $state == Z ]] && return 0
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
section() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/    /'; }
inns() { local ns=$PREFIX-$1; shift; ip netns exec "$ns" "$@"; }

# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds; fail after
# SECONDS. A poll with a deadline, not a sleep: it returns as soon as the
# condition holds. The router must stay alive meanwhile.
wait_for() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [[ -n $router_pid ]] && ! kill -0 "$router_pid" 2>/dev/null; then
			die "the router exited while waiting for $what"
		fi
		((SECONDS < deadline)) || die "timed out waiting for $what"
		sleep 0.1
	done
}

scrape() { inns router "$work/democlient" --get "http://$METRICS/metrics"; }
# metric NAME_OR_SERIES: its value in the last scrape ($metrics), 0 if absent.
metric() { awk -v s="$1" '$1 == s { printf "%.0f", $2; found = 1 } END { if (!found) print 0 }' <<<"$metrics"; }
generation() { metrics=$(scrape) && metric anysched_table_generation; }
generation_above() { local g; g=$(generation) && ((g > $1)); }

# write_config FILE DRAINED_NODE: the router config for the bed; the
# drained node (none: "") takes no new flows.
write_config() {
	local file=$1 drained=$2 i
	{
		cat <<-EOF
			# anysched demo router config (scripts/demo_testbed.sh)
			vips:
			  - address: $VIP4
			    port: 443
			    tls: true
			  - address: $VIP6
			    port: 443
			    tls: true
			pools:
		EOF
		for i in $(seq 1 "$NODES"); do
			if ((i == 1)); then echo "  - name: pool-a"; echo "    nodes:"; fi
			if ((i == NODES / 2 + 1)); then echo "  - name: pool-b"; echo "    nodes:"; fi
			echo "      - name: node$i"
			echo "        address: 10.99.0.$((10 + i))"
			if [[ node$i == "$drained" ]]; then echo "        drain: true"; fi
		done
		cat <<-EOF
			policy: weighted     # no probes or reports here: spread by capacity
			table:
			  size: 1009
			  seed: "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
			grace_period: ${GRACE}s
		EOF
	} >"$file"
}

section "1. build"
if [[ -x $ANYSCHED ]]; then
	cp "$ANYSCHED" "$work/anysched"
	echo "    router: $ANYSCHED"
else
	(cd "$repo" && "$GO" build -o "$work/" ./cmd/anysched) || die "go build ./cmd/anysched failed"
	echo "    router: built ./cmd/anysched ($ANYSCHED not found)"
fi
(cd "$repo" && "$GO" build -o "$work/" ./scripts/demo/nodeserver ./scripts/demo/democlient) ||
	die "go build ./scripts/demo/... failed"
echo "    node server and client: built scripts/demo/nodeserver, scripts/demo/democlient"

section "2. veth test bed $PREFIX ($NODES nodes, VIP $VIP4 and $VIP6)"
bed_up=true
"$repo/scripts/testbed.sh" up | indent || die "scripts/testbed.sh up failed"

section "3. router: anysched run --iface eth0 in $PREFIX-router"
cfg=$work/router.yaml
write_config "$cfg" ""
seed_line=$(grep 'seed:' "$cfg")
ip netns exec "$PREFIX-router" "$work/anysched" run --config "$cfg" --iface eth0 --metrics-addr "$METRICS" >"$work/router.log" 2>&1 &
router_pid=$!
wait_for 20 "the router's /ready on $METRICS" inns router "$work/democlient" --get "http://$METRICS/ready"
for i in $(seq 1 "$NODES"); do
	wait_for 10 "the router to learn node$i's MAC" grep -q " node=node$i mac=" "$work/router.log"
done
grep -E 'interface open| mac=' "$work/router.log" | sed 's/^time=[^ ]* //' | indent || true
echo "    config (node MACs omitted: the router resolves them from its neighbour table):"
grep -v '^ *#' "$cfg" | sed 's/\(seed: \).*/\1"<random>"/' | indent
echo "    its table (anysched table):"
"$work/anysched" table --config "$cfg" | sed -n '/digest/,$p' | indent

section "4. node servers on the VIP (direct server return)"
for i in $(seq 1 "$NODES"); do
	ip netns exec "$PREFIX-node$i" "$work/nodeserver" --name "node$i" --listen "$VIP4:443" --listen "[$VIP6]:443" >"$work/node$i.log" 2>&1 &
	node_pids+=($!)
done
for i in $(seq 1 "$NODES"); do
	wait_for 10 "node$i's server" grep -q listening "$work/node$i.log"
	echo "    node$i: TLS on $VIP4:443 and [$VIP6]:443 (pid ${node_pids[i - 1]})"
done

# clients KIND... : run the client in the client namespace; every
# connection must be answered.
clients_out=$work/clients.txt
: >"$clients_out"
clients() {
	local out
	out=$(inns client "$work/democlient" "$@") || { echo "$out" | indent; die "a client connection failed: democlient $*"; }
	echo "$out" | tee -a "$clients_out" | indent
}

section "5. clients: legacy (crypto/tls) and migration-capable (uTLS + migration_support), 4+4 over IPv4, 2+2 over IPv6"
clients --vip "$VIP4:443" --kind legacy,migrating --count 4
clients --vip "[$VIP6]:443" --kind legacy,migrating --count 2

section "6. hold one legacy and one migration-capable connection on node1"
coproc HOLD { exec ip netns exec "$PREFIX-client" "$work/democlient" --hold --on node1 --kind legacy,migrating --vip "$VIP4:443"; }
# Own copies of the coprocess's pipes: bash drops HOLD when it exits.
exec {hold_in}>&"${HOLD[1]}" {hold_out}<&"${HOLD[0]}"
coproc_in=${HOLD[1]}
exec {coproc_in}>&-
hold_round() {
	local line
	while :; do
		IFS= read -r -t 30 -u "$hold_out" line || die "the held connections stopped answering"
		[[ $line == "-- round done" ]] && return 0
		echo "$line" >>"$clients_out"
		echo "$line" >>"$work/held.txt"
		echo "    $line"
	done
}
: >"$work/held.txt"
hold_round
# held_node KIND: the node (or "error: ...") that last answered the held connection of KIND.
held_node() { awk -v k="$1" '$1 == k && $2 == "held" { last = $0 } END { sub(/.*-> /, "", last); print last }' "$work/held.txt"; }
[[ $(held_node legacy) == node1 && $(held_node migrating) == node1 ]] || die "could not hold both connections on node1"

section "7. change the table: drain node1, SIGHUP the router"
echo "    before:"
"$work/anysched" table --config "$cfg" | sed -n '/digest/p;/^POOL  *NODE/,/^$/p' | indent
write_config "$cfg.new" node1
# Same seed as the running table: it cannot change on reload.
sed -i "s/^  seed: .*/$seed_line/" "$cfg.new"
mv "$cfg.new" "$cfg"
echo "    after (node1 drain: true):"
"$work/anysched" table --config "$cfg" | sed -n '/digest/p;/^POOL  *NODE/,/^$/p' | indent
gen_before=$(generation)
hup_ms=$(now_ms) # the table changes after this: the grace period ends no earlier than hup_ms + GRACE
kill -HUP "$router_pid"
wait_for 10 "the router to publish a new table after SIGHUP" generation_above "$gen_before"
echo "    router: table generation $gen_before -> $(generation)"

section "8. within the grace period (${GRACE}s): established connections stay on node1"
echo ask >&"$hold_in"
hold_round
(($(now_ms) - hup_ms < GRACE * 1000)) || die "the grace period ran out before the held connections were asked (machine too slow; raise GRACE)"
[[ $(held_node legacy) == node1 ]] || die "the held legacy connection left node1 after the reload"
[[ $(held_node migrating) == node1 ]] || die "the held migration-capable connection left node1 within the grace period"
metrics=$(scrape)
pins_held=$(metric anysched_pins)
echo "    router: $pins_held pinned flow(s) now: the held legacy connection (closed legacy connections were unpinned by their RST)"

section "9. new connections follow the new table (node1 is drained)"
new_out=$(clients --vip "$VIP4:443" --kind legacy,migrating --count 4)
echo "$new_out"
if grep -q -- '-> node1$' <<<"$new_out"; then die "a new connection went to the drained node1"; fi

section "10. after the grace period: the pin keeps the legacy flow on node1; the router holds nothing for the other"
# Deliberate: the transition rule expires GRACE seconds after the change;
# this waits for that protocol timer, not for anything to get ready.
left_ms=$((hup_ms + GRACE * 1000 + 500 - $(now_ms)))
if ((left_ms > 0)); then sleep "$((left_ms / 1000)).$(printf %03d $((left_ms % 1000)))"; fi
echo ask >&"$hold_in"
hold_round
exec {hold_in}>&-
wait "$HOLD_PID" || true
HOLD_PID=
[[ $(held_node legacy) == node1 ]] || die "the pinned legacy connection left node1 after the grace period"
migrating_after=$(held_node migrating)
if [[ $migrating_after == node1 ]]; then
	die "the migration-capable connection is still on node1 after the grace period: the router kept state for it"
fi
echo "    (expected: a migration-capable client moves to its node's unicast address with the migration_token"
echo "     within the grace period; this demo client stays on the VIP, so its slot's new owner resets it)"

section "11. what happened"
metrics=$(scrape)
legacy_conns=$(grep -cE '^legacy +(#[0-9]+|try|held)' "$clients_out" || true)
migrating_conns=$(grep -cE '^migrating +(#[0-9]+|try|held)' "$clients_out" || true)
legacy_conns=$((legacy_conns - 2))       # the held connection printed "held" three times
migrating_conns=$((migrating_conns - 2))
echo "    answers by node (one per request; the held connections answered once per round):"
grep -oE -- '-> (node[0-9]+|error)' "$clients_out" | sort | uniq -c | sed 's/-> //' | indent
echo "    router counters (/metrics):"
row() { printf '      %-46s %s\n' "$1" "$2"; }
row "packets received / transmitted" "$(metric anysched_packets_received_total) / $(metric anysched_packets_transmitted_total)"
row "XDP: redirected to AF_XDP / passed (not VIP)" "$(metric 'anysched_xdp_verdicts_total{verdict="redirected"}') / $(metric 'anysched_xdp_verdicts_total{verdict="pass_not_vip"}')"
for route in syn table pin transition; do
	row "  forwarded by rule: $route" "$(metric "anysched_packets_routed_total{route=\"$route\"}")"
done
row "ClientHellos seen" "$(metric 'anysched_clienthellos_total{outcome="seen"}')"
row "  with migration_support" "$(metric 'anysched_clienthellos_total{outcome="migration_support"}')"
row "  segments held while incomplete (partial)" "$(metric 'anysched_clienthellos_total{outcome="partial"}')"
row "pins made (legacy ClientHello)" "$(metric 'anysched_clienthello_pin_changes_total{change="pin"}')"
row "pins removed: migration_support / client RST" "$(metric 'anysched_clienthello_pin_changes_total{change="unpin_migration_support"}') / $(metric 'anysched_clienthello_pin_changes_total{change="unpin_rst"}')"
row "pin table entries: held open / now" "$pins_held / $(metric anysched_pins)"
row "table generation" "$(metric anysched_table_generation)"

seen=$(metric 'anysched_clienthellos_total{outcome="seen"}')
mig_seen=$(metric 'anysched_clienthellos_total{outcome="migration_support"}')
pins_made=$(metric 'anysched_clienthello_pin_changes_total{change="pin"}')
echo "    state claim:"
echo "      legacy connections:            $legacy_conns opened, $pins_made pinned by the router"
echo "      migration-capable connections: $migrating_conns opened, $((pins_made > legacy_conns ? pins_made - legacy_conns : 0)) pinned: the router stored nothing for them"
((seen == legacy_conns + migrating_conns)) || die "the router saw $seen ClientHellos, the clients opened $((legacy_conns + migrating_conns)) connections"
((mig_seen == migrating_conns)) || die "the router saw $mig_seen ClientHellos with migration_support, the clients sent $migrating_conns"
((pins_made == legacy_conns)) || die "the router made $pins_made pins; want exactly one per legacy connection ($legacy_conns)"
if grep -q -- '-> error' "$clients_out"; then
	# Only the migration-capable held connection may fail, after the grace period.
	[[ $(grep -c -- '-> error' "$clients_out") == 1 && $migrating_after == error* ]] || die "a connection failed (see above)"
fi

section "done in $((SECONDS - started))s: legacy flows pinned, migration-capable flows not; established connections kept their node across the change"
