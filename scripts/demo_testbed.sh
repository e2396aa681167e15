#!/usr/bin/env bash
# demo_testbed.sh — the live half of `make demo`: the router on the veth
# test bed with real nodes (anynode) and real migrating clients (anyclient).
#
# Builds anysched, anynode and anyclient, brings up the veth bed
# (scripts/testbed.sh, 4 nodes in two pools, PREFIX demo<PID>), runs
# `anysched run` on AF_XDP in the router namespace and an anynode in every
# node namespace (HTTPS on the VIP, held on lo, and on the node's unicast
# address; the two nodes of a pool share a ticket-key file). From the
# client namespace it sends migrating clients (anyclient, policies
# rendezvous and background), which end on their node's unicast address,
# and legacy clients (anyclient --policy never, curl), which stay on the
# VIP and are pinned by the router. It then drains a node in the router
# (config reload) and on the node itself (SIGTERM): the migrated client
# keeps its node through the table change without any router state, then
# moves to the node's pool sibling without losing a request. It ends with
# the router's counters and the state claim: one pin per legacy
# connection, none for the migrating ones.
#
# Usage: scripts/demo_testbed.sh            (as root)
# Environment: ANYSCHED (the router binary; default bin/anysched from
# `make build`, built here if missing), ANYNODE and ANYCLIENT (default:
# built here from ./cmd), GO (default go), GRACE (grace period in seconds,
# default 5).
# Exit codes: 0 everything worked, 1 something did not (the message says
# what), 2 not root or bad environment. The bed is torn down on every exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
ANYSCHED=${ANYSCHED:-$repo/bin/anysched}
GRACE=${GRACE:-5}
METRICS=127.0.0.1:9300 # the router's, in its namespace
ADMIN=127.0.0.1:9400   # each node's admin API, in its namespace
VIP4=10.200.0.1
VIP6=fd00:200::1
NODES=4
export PREFIX=demo$$ NODES VIP4 VIP6

die() {
	echo "demo_testbed.sh: FAILED: $*" >&2
	exit 1
}

case "${1:-}" in
-h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
held_pids=()

# cleanup runs on every exit: stop what we started (the router detaches
# its XDP program on SIGTERM), then remove every namespace of the bed.
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	set +e
	for pid in "${held_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	for pid in $router_pid "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in $router_pid "${node_pids[@]}"; do stopped "$pid" 10 || kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	# Anything else still running inside the bed's namespaces was started
	# by this script too: stop it, or the namespaces outlive `down`.
	for ns in $(ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 { print $1 }'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	if $bed_up; then "$repo/scripts/testbed.sh" down || { echo "demo_testbed.sh: testbed.sh down failed" >&2; rc=1; }; fi
	if ((rc != 0)); then
		for log in "$work"/router.log "$work"/node*.log; do
			[[ -s $log ]] || continue
			echo "--- last lines of $(basename "$log"):" >&2
			tail -n 8 "$log" >&2
		done
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
unicast() { echo "10.99.0.$((10 + $1))"; }
# sibling I: the other node of node I's pool (pool-a: 1 2, pool-b: 3 4).
sibling() { echo $(($1 % 2 == 1 ? $1 + 1 : $1 - 1)); }
pool_of() { if (($1 <= NODES / 2)); then echo a; else echo b; fi; }

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

# http NS METHOD HOST:PORT PATH: a plain HTTP/1.0 request from inside
# namespace NS (bash's /dev/tcp: no other tool needed); prints the body,
# fails unless the status is 2xx.
http() {
	local ns=$1 method=$2 host=${3%:*} port=${3##*:} path=$4
	inns "$ns" timeout 10 bash -c '
		exec 3<>"/dev/tcp/$0/$1" || exit 1
		printf "%s %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$3" "$0" >&3
		IFS= read -r status <&3 || exit 1
		case $status in "HTTP/1."?" 2"*) ;; *) exit 1 ;; esac
		while IFS= read -r line <&3 && [[ $line != $'"'"'\r'"'"' ]]; do :; done
		cat <&3' "$host" "$port" "$method" "$path"
}

scrape() { http router GET "$METRICS" /metrics; }
# metric NAME_OR_SERIES: its value in the last scrape ($metrics), 0 if absent.
metric() { awk -v s="$1" '$1 == s { printf "%.0f", $2; found = 1 } END { if (!found) print 0 }' <<<"$metrics"; }
generation() { metrics=$(scrape) && metric anysched_table_generation; }
generation_above() { local g; g=$(generation) && ((g > $1)); }

# field JSON KEY: one scalar field of anyclient's JSON (strings unquoted).
field() { sed -n 's/.*"'"$2"'":\("[^"]*"\|[^,}]*\).*/\1/p' <<<"$1" | tr -d '"'; }

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
			echo "        address: $(unicast "$i")"
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
if [[ -n ${ANYNODE:-} && -n ${ANYCLIENT:-} ]]; then
	cp "$ANYNODE" "$work/anynode" && cp "$ANYCLIENT" "$work/anyclient" || die "ANYNODE=$ANYNODE or ANYCLIENT=$ANYCLIENT cannot be copied"
	echo "    node and client: $ANYNODE, $ANYCLIENT"
else
	(cd "$repo" && "$GO" build -o "$work/" ./cmd/anynode ./cmd/anyclient) || die "go build ./cmd/anynode ./cmd/anyclient failed"
	echo "    node and client: built ./cmd/anynode, ./cmd/anyclient"
fi

section "2. veth test bed $PREFIX ($NODES nodes, VIP $VIP4 and $VIP6)"
bed_up=true
"$repo/scripts/testbed.sh" up | indent || die "scripts/testbed.sh up failed"

section "3. router: anysched run --iface eth0 in $PREFIX-router"
cfg=$work/router.yaml
write_config "$cfg" ""
seed_line=$(grep 'seed:' "$cfg")
ip netns exec "$PREFIX-router" "$work/anysched" run --config "$cfg" --iface eth0 --metrics-addr "$METRICS" >"$work/router.log" 2>&1 &
router_pid=$!
wait_for 20 "the router's /ready on $METRICS" http router GET "$METRICS" /ready
for i in $(seq 1 "$NODES"); do
	wait_for 10 "the router to learn node$i's MAC" grep -q " node=node$i mac=" "$work/router.log"
done
grep -E 'interface open| mac=' "$work/router.log" | sed 's/^time=[^ ]* //' | indent || true
echo "    its table (anysched table):"
"$work/anysched" table --config "$cfg" | sed -n '/^POOL  *NODE/,/^$/p' | sed '/^$/d' | indent

section "4. nodes: anynode on the VIP (direct server return) and on its unicast address"
for pool in a b; do od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$work/pool-$pool.keys"; echo >>"$work/pool-$pool.keys"; done
for i in $(seq 1 "$NODES"); do
	ip netns exec "$PREFIX-node$i" "$work/anynode" --name "node$i" --vip "$VIP4:443" --vip "[$VIP6]:443" \
		--unicast "$(unicast "$i"):443" --ticket-keys "$work/pool-$(pool_of "$i").keys" \
		--admin-addr "$ADMIN" --write-cert "$work/node$i.pem" \
		--drain-target "$(unicast "$(sibling "$i")"):443" --drain-timeout 10s >"$work/node$i.log" 2>&1 &
	node_pids+=($!)
done
for i in $(seq 1 "$NODES"); do
	wait_for 10 "node$i's anynode" grep -q msg=serving "$work/node$i.log"
	echo "    node$i: https on $VIP4:443, [$VIP6]:443 and $(unicast "$i"):443; pool-$(pool_of "$i") ticket keys (shared with node$(sibling "$i"))"
done
echo "    node1's load report (GET /load on its admin API, the format the router's scheduler reads):"
echo "      $(http node1 GET "$ADMIN" /load | tr -d ' \n')"
cat "$work"/node*.pem >"$work/ca.pem" # each node's self-signed certificate: the clients' --ca
echo "    clients verify the nodes with --ca (the nodes' self-signed certificates, from --write-cert)"

# Every connection the clients open through the VIP, by kind, for the
# state claim at the end.
migrating_conns=0
legacy_conns=0

# get LABEL ARGS...: one `anyclient get --json` from the client namespace;
# prints where it landed. Sets $got (the JSON line).
get() {
	local label=$1 out
	shift
	out=$(inns client "$work/anyclient" get --ca "$work/ca.pem" --json "$@") || { echo "$out" | indent; die "anyclient get $* failed"; }
	got=$(tail -n 1 <<<"$out")
	printf '    %-22s -> %-6s on %-22s migrated=%s resumed=%s%s\n' "$label" "$(field "$got" node)" "$(field "$got" remote)" \
		"$(field "$got" migrated)" "$(field "$got" resumed)" "$(f=$(field "$got" fallback); [[ -n $f ]] && echo " fallback=\"$f\"")"
}
on_unicast() { [[ $(field "$got" migrated) == true && $(field "$got" remote) == "$(unicast "${1#node}"):443" ]]; }

section "5. one request per client: migrating (rendezvous, background) and legacy (never, curl)"
for v in 4 4 4 4 6 6; do
	vip=$VIP4
	[[ $v == 6 ]] && vip="[$VIP6]"
	get "rendezvous IPv$v" "https://$vip/"
	on_unicast "$(field "$got" node)" || die "a rendezvous client did not end on its node's unicast address"
	migrating_conns=$((migrating_conns + 1))
done
for n in 1 2; do
	# Three requests on one connection: the first is answered on the VIP
	# at once, the connection moves behind it (make-before-break).
	out=$(inns client "$work/anyclient" get --ca "$work/ca.pem" --json --policy background --repeat 3 --interval 300ms "https://$VIP4/") ||
		die "anyclient get --policy background failed"
	i=0
	while IFS= read -r line; do
		i=$((i + 1))
		printf '    %-22s -> %-6s on %-22s migrated=%s\n' "background #$n req $i" "$(field "$line" node)" "$(field "$line" remote)" "$(field "$line" migrated)"
	done <<<"$out"
	got=$(tail -n 1 <<<"$out")
	on_unicast "$(field "$got" node)" || die "a background client was not on its node's unicast address by its third request"
	migrating_conns=$((migrating_conns + 1))
done
for v in 4 4 4 4 6 6; do
	vip=$VIP4
	[[ $v == 6 ]] && vip="[$VIP6]"
	get "never IPv$v" --policy never "https://$vip/"
	[[ $(field "$got" migrated) == false && $(field "$got" remote) == "$vip:443" ]] || die "a legacy client left the VIP"
	legacy_conns=$((legacy_conns + 1))
done
if command -v curl >/dev/null; then
	for n in 1 2; do
		node=$(inns client curl -sS --fail --cacert "$work/ca.pem" -o /dev/null -D - "https://$VIP4/" | tr -d '\r' | sed -n 's/^[Aa]nysched-[Nn]ode: //p') ||
			die "curl https://$VIP4/ failed"
		printf '    %-22s -> %-6s on %s (the VIP)\n' "curl #$n" "$node" "$VIP4:443"
		legacy_conns=$((legacy_conns + 1))
	done
else
	echo "    (curl not found: its two legacy requests skipped)"
fi

section "6. load: anyclient load, migrating and legacy"
load() {
	local out
	out=$(inns client "$work/anyclient" load --ca "$work/ca.pem" --json --progress off "$@" "https://$VIP4/") || {
		echo "$out" | indent
		die "anyclient load $* broke connections"
	}
	got=$(tail -n 1 <<<"$out")
}
load --connections 8 --duration 2s --requests-per-conn 3
echo "    rendezvous, 8 at once for 2s, 3 requests each: $(field "$got" connections) connections, $(field "$got" migrated) migrated," \
	"$(field "$got" resumed) resumed, $(field "$got" fallbacks) fallbacks, $(field "$got" broken) broken;" \
	"connect-to-first-byte p50 $(field "$got" ttfb_p50_ms)ms p99 $(field "$got" ttfb_p99_ms)ms"
(($(field "$got" migrated) == $(field "$got" connections))) || die "not every load connection migrated"
migrating_conns=$((migrating_conns + $(field "$got" connections)))
load --policy never --connections 4 --total 20 --duration 10s --requests-per-conn 3
echo "    never, 4 at once, 20 in all, 3 requests each:   $(field "$got" connections) connections, $(field "$got" migrated) migrated," \
	"$(field "$got" broken) broken; connect-to-first-byte p50 $(field "$got" ttfb_p50_ms)ms p99 $(field "$got" ttfb_p99_ms)ms"
legacy_conns=$((legacy_conns + $(field "$got" connections)))

section "7. hold migrated and legacy connections until one of each shares a node"
held_requests=$(((GRACE + 10) * 5)) # one every 200ms: they outlast the reload and the grace period
# hold FILE ARGS...: a long-lived anyclient get in the background (run by
# ip netns exec itself, so $! is the client's pid).
hold() {
	local file=$1
	shift
	ip netns exec "$PREFIX-client" "$work/anyclient" get --ca "$work/ca.pem" --json --repeat "$held_requests" --interval 200ms "$@" "https://$VIP4/" >"$file" 2>"$file.err" &
	held_pids+=($!)
}
first_node() { [[ -s $1 ]] && field "$(head -n 1 "$1")" node; }
holders=6 # of each kind; the table spreads them over the 4 nodes
for k in $(seq 1 "$holders"); do
	hold "$work/held-mig-$k.jsonl"
	hold "$work/held-legacy-$k.jsonl" --policy never
done
migrating_conns=$((migrating_conns + holders))
legacy_conns=$((legacy_conns + holders))
for k in $(seq 1 "$holders"); do
	wait_for 20 "held connection $k's first answers" first_node "$work/held-mig-$k.jsonl"
	wait_for 20 "held connection $k's first answers" first_node "$work/held-legacy-$k.jsonl"
	got=$(head -n 1 "$work/held-mig-$k.jsonl")
	on_unicast "$(field "$got" node)" || die "a held migrating connection is not on its node's unicast address: $got"
done
X= mig_k= legacy_k=
for i in $(seq 1 "$NODES"); do
	for k in $(seq 1 "$holders"); do
		[[ -z $mig_k && $(first_node "$work/held-mig-$k.jsonl") == "node$i" ]] && mig_k=$k
		[[ -z $legacy_k && $(first_node "$work/held-legacy-$k.jsonl") == "node$i" ]] && legacy_k=$k
	done
	if [[ -n $mig_k && -n $legacy_k ]]; then X=node$i; break; fi
	mig_k= legacy_k=
done
[[ -n $X ]] || die "no node got both a migrating and a legacy held connection (try again)"
mig_pid=${held_pids[2 * (mig_k - 1)]} legacy_pid=${held_pids[2 * (legacy_k - 1) + 1]}
for pid in "${held_pids[@]}"; do
	[[ $pid == "$mig_pid" || $pid == "$legacy_pid" ]] && continue
	kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
done
held_pids=("$mig_pid" "$legacy_pid")
mig_file=$work/held-mig-$mig_k.jsonl legacy_file=$work/held-legacy-$legacy_k.jsonl
echo "    $holders of each kind opened; kept one of each on $X, closed the rest:"
echo "    migrating (rendezvous): $X, on $(field "$(head -n 1 "$mig_file")" remote) — not through the router"
echo "    legacy (never):        $X, on $VIP4:443 through the router (pinned)"

section "8. drain $X in the router (config reload): new connections avoid it, held ones stay"
write_config "$cfg.new" "$X"
sed -i "s/^  seed: .*/$seed_line/" "$cfg.new" # same seed: it cannot change on reload
mv "$cfg.new" "$cfg"
gen_before=$(generation)
hup_ms=$(now_ms) # the grace period ends no earlier than hup_ms + GRACE
kill -HUP "$router_pid"
wait_for 10 "the router to publish a new table after SIGHUP" generation_above "$gen_before"
echo "    router: table generation $gen_before -> $(generation), $X drain: true"
for n in 1 2; do
	get "new rendezvous #$n" "https://$VIP4/"
	[[ $(field "$got" node) != "$X" ]] || die "a new connection went to the drained $X"
	migrating_conns=$((migrating_conns + 1))
	get "new never #$n" --policy never "https://$VIP4/"
	[[ $(field "$got" node) != "$X" ]] || die "a new connection went to the drained $X"
	legacy_conns=$((legacy_conns + 1))
done
# Deliberate: the transition rule expires GRACE seconds after the change;
# this waits for that protocol timer, not for anything to get ready.
left_ms=$((hup_ms + GRACE * 1000 + 500 - $(now_ms)))
if ((left_ms > 0)); then sleep "$((left_ms / 1000)).$(printf %03d $((left_ms % 1000)))"; fi
kill -0 "$mig_pid" 2>/dev/null && kill -0 "$legacy_pid" 2>/dev/null ||
	die "a held connection finished before the grace period ran out (machine too slow; raise GRACE)"
metrics=$(scrape)
pins_held=$(metric anysched_pins)
answered=$(wc -l <"$mig_file") answered_legacy=$(wc -l <"$legacy_file")
# elsewhere FILE: the first answer of a held connection not from $X.
elsewhere() { grep -v -m1 "\"node\":\"$X\"" "$1" | cut -c1-300; }
[[ -z $(elsewhere "$mig_file") ]] || die "the migrated connection was answered elsewhere: $(elsewhere "$mig_file")"
[[ -z $(elsewhere "$legacy_file") ]] || die "the pinned legacy connection left $X: $(elsewhere "$legacy_file") $(cat "$legacy_file.err")"
echo "    after the grace period: the migrated connection, $answered answers, all from $X on its unicast address (nothing in the router)"
echo "                            the legacy connection, $answered_legacy answers, all from $X (the router's pin; $pins_held pin(s) now)"

Xi=${X#node}
S=node$(sibling "$Xi")
section "9. drain $X itself (SIGTERM, --drain-target $S): the migrated client moves, the legacy one cannot"
kill -TERM "${node_pids[Xi - 1]}"
wait "$mig_pid" || die "the migrating held client failed: $(grep -m1 '"error"' "$mig_file" || tail -n 1 "$mig_file")"
stopped "${node_pids[Xi - 1]}" 20 || die "$X did not exit after its drain"
wait "${node_pids[Xi - 1]}" || die "$X exited with an error after its drain"
wait "$legacy_pid" && legacy_rc=0 || legacy_rc=$?
held_pids=()
grep -m1 'msg=drained' "$work/node$Xi.log" | sed 's/^time=[^ ]* level=[A-Z]* //' | indent
last=$(tail -n 1 "$mig_file")
moved=$(grep -c "\"node\":\"$S\"" "$mig_file" || true)
echo "    migrating: all $held_requests requests answered, $moved of them by $S on $(field "$last" remote) after the move"
[[ $(field "$last" node) == "$S" && $(field "$last" remote) == "$(unicast "$(sibling "$Xi")"):443" ]] || die "the migrated client did not end on $S"
# A node change in the legacy client's answers is a new connection: its
# Transport redials through the VIP when the old one is closed under it.
reconnects=$(sed -n 's/.*"node":"\([^"]*\)".*/\1/p' "$legacy_file" | uniq | sed 1d | wc -l)
legacy_conns=$((legacy_conns + reconnects))
if grep -q "\"node\":\"$X\"" <(tail -n 1 "$legacy_file"); then
	echo "    legacy: all $(wc -l <"$legacy_file") answers from $X (its connection outlived the drain)"
elif ((reconnects > 0)); then
	echo "    legacy: its connection was closed when $X stopped; the client redialed the VIP (a new connection, a new pin)"
	echo "            and $(field "$(tail -n 1 "$legacy_file")" node) answered the rest (exit $legacy_rc)"
else
	echo "    legacy: its connection ended with $X: $(field "$(grep -m1 '"error"' "$legacy_file")" error | cut -c1-80)"
fi

section "10. what the router holds"
metrics=$(scrape)
row() { printf '      %-46s %s\n' "$1" "$2"; }
echo "    router counters (/metrics):"
row "packets received / transmitted" "$(metric anysched_packets_received_total) / $(metric anysched_packets_transmitted_total)"
for route in syn table pin transition; do
	row "  forwarded by rule: $route" "$(metric "anysched_packets_routed_total{route=\"$route\"}")"
done
seen=$(metric 'anysched_clienthellos_total{outcome="seen"}')
mig_seen=$(metric 'anysched_clienthellos_total{outcome="migration_support"}')
pins_made=$(metric 'anysched_clienthello_pin_changes_total{change="pin"}')
row "ClientHellos seen" "$seen"
row "  with migration_support" "$mig_seen"
row "pins made (legacy ClientHello)" "$pins_made"
row "pins removed: migration_support / client RST" "$(metric 'anysched_clienthello_pin_changes_total{change="unpin_migration_support"}') / $(metric 'anysched_clienthello_pin_changes_total{change="unpin_rst"}')"
row "pin table entries: while held / now" "$pins_held / $(metric anysched_pins)"
echo "    state claim:"
echo "      legacy connections:    $legacy_conns through the VIP, $pins_made pinned by the router"
echo "      migrating connections: $migrating_conns through the VIP, $((pins_made > legacy_conns ? pins_made - legacy_conns : 0)) pinned; each went on from its node's unicast address"
((seen == legacy_conns + migrating_conns)) || die "the router saw $seen ClientHellos, the clients sent $((legacy_conns + migrating_conns)) to the VIP"
((mig_seen == migrating_conns)) || die "the router saw $mig_seen ClientHellos with migration_support, the clients sent $migrating_conns"
((pins_made == legacy_conns)) || die "the router made $pins_made pins; want exactly one per legacy connection ($legacy_conns)"

section "done in $((SECONDS - started))s: migrating clients on their nodes' unicast addresses, the router holding nothing for them; legacy clients pinned"
