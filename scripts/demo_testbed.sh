#!/usr/bin/env bash
# demo_testbed.sh — the live half of `make demo`: the router on the veth
# test bed, scheduling on live status, with real nodes and a mix of
# migrating and legacy clients under load.
#
# Brings up the bed (scripts/testbed.sh up --delay: client, router on a
# stick, 2 pools x 2 nodes, a user-space delay line in front of every
# node, PREFIX demo<PID>), a Redis replay store on the fabric (shared by
# all nodes: a migration token is single-use across them), an anynode in
# every node namespace (HTTPS on the VIP, held on lo, and on its unicast
# address; the nodes of a pool share a ticket-key file) and `anysched run`
# on AF_XDP in the router namespace, whose config gives every node a
# health_port (TCP probes: RTT and up/down) and a report_port (anynode's
# GET /load: connections, CPU, draining), so the schedule follows live
# status. Then, for LOAD seconds, from the client namespace: migrating
# clients (anyclient rendezvous and background, IPv4 and IPv6) and legacy
# ones (anyclient --policy never, curl, openssl s_client), with one
# summary line per second. A quarter of the way in, pool-b's delay goes up
# (testbed delay): new flows move away from it. Half way, node1 leaves the
# router's schedule (config reload, drain: true) and, once no slot can
# still send it a new flow, is drained (SIGTERM): its capable clients move
# to node2, its legacy ones finish. It ends with a table per node, every
# client's count and the state claim as measured: pin-table entries
# against connections opened, by kind (migrating: none; legacy: one each).
#
# Usage: scripts/demo_testbed.sh            (as root)
# Environment: ANYSCHED, ANYNODE, ANYCLIENT, TESTBED (the binaries;
# default: built here), GO (default go), LOAD (seconds of load, default 32,
# at least 24), KEEP_WORK (set: keep the logs and client reports), DRAIN
# (router+node, the default: node1 leaves the router's schedule by a
# config reload, then gets SIGTERM; node: SIGTERM alone, and the router
# learns it from the node's report), DRAIN_WAIT (seconds from the reload
# to the SIGTERM, default the grace period + 1).
# Exit codes: 0 every claim held and no connection broke, 1 otherwise (the
# message says what), 2 not root or bad environment. The bed, the store
# and every process are gone on every exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
LOAD=${LOAD:-32}
DRAIN=${DRAIN:-router+node}
GRACE=5                 # the router's grace period (and slot dwell time), seconds
SETTLE=4                # seconds the schedule takes to follow a delay change
DRAIN_WAIT=${DRAIN_WAIT:-$((GRACE + 1))}
NODES=4
VIP4=10.200.0.1
VIP6=fd00:200::1
ROUTER=10.99.0.2        # the router's fabric address (metrics on :9300)
STORE=10.99.0.250       # Redis, on the fabric bridge itself
ADMIN_PORT=9400         # anynode's admin API (GET /load) on its unicast address
METRICS_PORT=9401       # anynode's Prometheus metrics
BASE_DELAY=2ms          # every node's delay line at the start
SLOW_DELAY=100ms        # pool-b's, from a quarter of the way in
export PREFIX=demo$$ NODES VIP4 VIP6

die() {
	echo "demo_testbed.sh: FAILED: $*" >&2
	exit 1
}

case "${1:-}" in
-h | --help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
'') ;;
*) echo "demo_testbed.sh: unexpected argument '$1' (try --help)" >&2; exit 2 ;;
esac
case "$DRAIN" in router+node | node) ;; *) echo "demo_testbed.sh: DRAIN=$DRAIN: want router+node or node" >&2; exit 2 ;; esac
case "$DRAIN_WAIT" in '' | *[!0-9]*) echo "demo_testbed.sh: DRAIN_WAIT=$DRAIN_WAIT: want whole seconds" >&2; exit 2 ;; esac
case "$LOAD" in '' | *[!0-9]*) echo "demo_testbed.sh: LOAD=$LOAD: want whole seconds, at least 24" >&2; exit 2 ;; esac
((LOAD >= 24)) || { echo "demo_testbed.sh: LOAD=$LOAD: want whole seconds, at least 24" >&2; exit 2; }
((LOAD / 2 + DRAIN_WAIT + 2 < LOAD)) || { echo "demo_testbed.sh: DRAIN_WAIT=$DRAIN_WAIT: the SIGTERM would come after the load (LOAD=$LOAD); want less than $((LOAD - LOAD / 2 - 2))" >&2; exit 2; }
if [[ $(id -u) != 0 ]]; then
	echo "demo_testbed.sh: needs root (it creates network namespaces, veth links and attaches XDP); try: sudo make demo" >&2
	exit 2
fi
for tool in ip curl openssl redis-server awk "$GO"; do
	command -v "$tool" >/dev/null || { echo "demo_testbed.sh: $tool not found (make deps installs it)" >&2; exit 2; }
done

started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/anysched-demo.XXXXXX")
bed_pid=
router_pid=
store_pid=
node_pids=()
client_pids=()
held_pids=()

# cleanup runs on every exit: stop what we started (the router detaches
# its XDP program on SIGTERM; the bed's `up` removes its namespaces on
# SIGTERM), then make sure no namespace of the bed is left.
cleanup() {
	local rc=$? pid ns
	trap - EXIT INT TERM
	set +e
	for pid in "${client_pids[@]}" "${held_pids[@]}" $scraper_pid; do kill "$pid" 2>/dev/null; done
	for pid in "${client_pids[@]}" "${held_pids[@]}"; do wait "$pid" 2>/dev/null; done
	for pid in $router_pid "${node_pids[@]}" $store_pid; do kill -TERM "$pid" 2>/dev/null; done
	for pid in $router_pid "${node_pids[@]}" $store_pid; do stopped "$pid" 10 || kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	# Anything else still running inside the bed's namespaces was started
	# by this script too: stop it, or the namespaces outlive `down`.
	for ns in $(ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 { print $1 }'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	if [[ -n $bed_pid ]]; then
		kill -TERM "$bed_pid" 2>/dev/null
		stopped "$bed_pid" 20 || kill -KILL "$bed_pid" 2>/dev/null
		wait "$bed_pid" 2>/dev/null
		"$work/testbed" down || { echo "demo_testbed.sh: testbed down failed" >&2; rc=1; }
	fi
	if ((rc != 0)); then
		for log in "$work"/bed.log "$work"/router.log "$work"/node*.log "$work"/store.log; do
			[[ -s $log ]] || continue
			echo "--- last lines of $(basename "$log"):" >&2
			tail -n 8 "$log" >&2
		done
	fi
	if [[ -n ${KEEP_WORK:-} ]]; then echo "demo_testbed.sh: logs kept in $work" >&2; else rm -rf "$work"; fi
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

section() { printf '\n== %s   [%ds]\n' "$*" $((SECONDS - started)); }
indent() { sed 's/^/    /'; }
inns() { local ns=$PREFIX-$1; shift; ip netns exec "$ns" "$@"; }
unicast() { echo "10.99.0.$((10 + $1))"; }
# sibling I: the other node of node I's pool (pool-a: 1 2, pool-b: 3 4).
sibling() { echo $(($1 % 2 == 1 ? $1 + 1 : $1 - 1)); }
pool_of() { if (($1 <= NODES / 2)); then echo a; else echo b; fi; }

# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds; fail after
# SECONDS. A poll with a deadline, not a sleep: it returns as soon as the
# condition holds.
wait_for() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [[ -n $router_pid ]] && ! kill -0 "$router_pid" 2>/dev/null; then die "the router exited while waiting for $what"; fi
		if [[ -n $bed_pid ]] && ! kill -0 "$bed_pid" 2>/dev/null; then die "the bed's testbed up exited while waiting for $what"; fi
		((SECONDS < deadline)) || die "timed out waiting for $what"
		sleep 0.1
	done
}

# get URL: one plain HTTP GET from the client namespace (router metrics,
# node admin API), body on stdout.
get() { inns client curl -sS --fail --max-time 3 "$1"; }
store_ready() { inns node1 bash -c 'exec 3<>"/dev/tcp/$0/6379" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && [[ $l == "+PONG"* ]]' "$STORE"; }

# scrape: scrape_metrics (below), then read the last scrapes of the
# project's series into M[name:series.label1.label2...] (name: router,
# node1...; label values in the exposition's order, which is by label
# name), e.g. M[router:anysched_pins], M[node2:anynode_tokens_accepted_total.node2].
# Lookups are expansions, not subshells: a fork costs a lot on a busy machine.
declare -A M
scrape() {
	local key value
	scrape_metrics
	M=()
	while read -r key value; do
		M[$key]=$value
	done < <(awk '/^any(sched|node)_/ && NF >= 2 {
		n = FILENAME; sub(/.*\//, "", n); k = $1
		gsub(/\{[a-z_]+="|",[a-z_]+="/, ".", k); gsub(/"\}$/, "", k)
		printf "%s:%s %.0f\n", n, k, $2 }' "$work"/m/router "$work"/m/node?)
}

# scrape_settled: scrape until two scrapes in a row agree on the router's
# pin and ClientHello counters (a last RST can land between the counters
# and the gauge of one scrape), at most 5s.
scrape_settled() {
	local before= now deadline=$((SECONDS + 5))
	while :; do
		scrape
		now=$(grep -E '^anysched_(pin|clienthello)' "$work/m/router" || true)
		[[ $now == "$before" ]] && return 0
		((SECONDS < deadline)) || die "the router's pin counters did not settle after the clients finished"
		before=$now
		sleep 0.3 # between two scrapes, not a readiness wait
	done
}

# report NAME: the last report anyclient load NAME printed, its fields in
# R[key] (numbers and strings; failures as the raw JSON object).
declare -A R
report() {
	local key value
	R=()
	while read -r key value; do
		R[$key]=$value
	done < <(tail -n 1 "$work/load-$1.jsonl" 2>/dev/null | awk '{
		n = split("final connections migrated fallbacks broken ttfb_p50_ms ttfb_p99_ms", keys, " ")
		for (i = 1; i <= n; i++) if (match($0, "\"" keys[i] "\":[^,}]*")) print keys[i], substr($0, RSTART + length(keys[i]) + 3, RLENGTH - length(keys[i]) - 3)
		if (match($0, /"failures":\{[^}]*\}/)) print "failures", substr($0, RSTART + 11, RLENGTH - 11) }')
}

# write_config FILE [DRAINED]: the router config; every node is probed on
# its HTTPS port and reports its load on its admin port; node DRAINED (if
# given) takes no new flows. The seed is the run's: a reload keeps it.
seed=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
write_config() {
	local i
	{
		cat <<-EOF
			# anysched demo router config (scripts/demo_testbed.sh)
			vips:
			  - address: $VIP4
			  - address: $VIP6
			pools:
		EOF
		for i in $(seq 1 "$NODES"); do
			if ((i == 1)); then echo "  - name: pool-a"; echo "    nodes:"; fi
			if ((i == NODES / 2 + 1)); then echo "  - name: pool-b"; echo "    nodes:"; fi
			echo "      - name: node$i"
			echo "        address: $(unicast "$i")"
			echo "        health_port: 443"
			echo "        report_port: $ADMIN_PORT"
			if [[ node$i == "${2:-}" ]]; then echo "        drain: true"; fi
		done
		cat <<-EOF
			policy: weighted      # every pool gets new flows, by score
			table:
			  size: 1009
			  seed: "$seed"
			grace_period: ${GRACE}s
			probe: { interval: 250ms, timeout: 200ms, down_after: 3, up_after: 2, ewma_alpha: 0.5 }
			reports: { interval: 250ms, timeout: 200ms, stale_after: 2s }
			score: { delay_reference: 100ms, delay_weight: 0.8, load_weight: 0.2 }
			hysteresis: { threshold: 0.5, min_interval: 2s }   # not for every jitter of a busy machine
		EOF
	} >"$1"
}

section "1. build"
mkdir -p "$work/m"
for b in anysched anynode anyclient testbed; do
	var=${b^^}
	if [[ -n ${!var:-} ]]; then
		cp "${!var}" "$work/$b" || die "$var=${!var} cannot be copied"
	else
		pkg=./cmd/$b
		[[ $b == testbed ]] && pkg=./internal/testbed/cmd/testbed
		(cd "$repo" && "$GO" build -o "$work/" "$pkg") || die "go build $pkg failed"
	fi
done
echo "    anysched, anynode, anyclient, testbed: $(cd "$repo" && git describe --always --dirty 2>/dev/null || echo built)"

section "2. veth test bed $PREFIX: 2 pools x 2 nodes, a delay line of $BASE_DELAY in front of every node"
delays=()
for i in $(seq 1 "$NODES"); do delays+=(--delay "node$i=$BASE_DELAY"); done
"$work/testbed" "${delays[@]}" up >"$work/bed.out" 2>"$work/bed.log" &
bed_pid=$!
wait_for 30 "the bed's delay-line control socket" "$work/testbed" delay
indent <"$work/bed.out"
echo "    delays: $("$work/testbed" delay)"

section "3. Redis replay store on the fabric ($STORE:6379, br0 in $PREFIX-fabric)"
ip -n "$PREFIX-fabric" addr add "$STORE/24" dev br0 || die "cannot give br0 $STORE"
ip netns exec "$PREFIX-fabric" redis-server --bind "$STORE" --port 6379 --save '' --appendonly no \
	--protected-mode no --daemonize no --loglevel warning >"$work/store.log" 2>&1 &
store_pid=$!
wait_for 10 "redis-server on $STORE:6379" store_ready
echo "    redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): every node's --replay redis://$STORE:6379"

section "4. nodes: anynode on the VIP (direct server return) and on its unicast address"
for pool in a b; do od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$work/pool-$pool.keys"; echo >>"$work/pool-$pool.keys"; done
for i in $(seq 1 "$NODES"); do
	u=$(unicast "$i")
	ip netns exec "$PREFIX-node$i" "$work/anynode" --name "node$i" --vip "$VIP4:443" --vip "[$VIP6]:443" \
		--unicast "$u:443" --ticket-keys "$work/pool-$(pool_of "$i").keys" --replay "redis://$STORE:6379" \
		--admin-addr "$u:$ADMIN_PORT" --metrics-addr "$u:$METRICS_PORT" --write-cert "$work/node$i.pem" \
		--drain-target "$(unicast "$(sibling "$i")"):443" --drain-timeout 10s >"$work/node$i.log" 2>&1 &
	node_pids+=($!)
done
for i in $(seq 1 "$NODES"); do
	wait_for 10 "node$i's anynode" grep -q msg=serving "$work/node$i.log"
	echo "    node$i (pool-$(pool_of "$i")): https on $VIP4:443, [$VIP6]:443, $(unicast "$i"):443; /load on :$ADMIN_PORT; tickets shared with node$(sibling "$i")"
done
cat "$work"/node*.pem >"$work/ca.pem" # the nodes' self-signed certificates: the clients' --ca
echo "    node1's load report, as the router fetches it: $(get "http://$(unicast 1):$ADMIN_PORT/load" | tr -d ' \n')"

section "5. router: anysched run --iface eth0 in $PREFIX-router, on live status"
cfg=$work/router.yaml
write_config "$cfg"
ip netns exec "$PREFIX-router" "$work/anysched" run --config "$cfg" --iface eth0 --metrics-addr "$ROUTER:9300" >"$work/router.log" 2>&1 &
router_pid=$!
wait_for 20 "the router's /ready" get "http://$ROUTER:9300/ready"
for i in $(seq 1 "$NODES"); do
	wait_for 10 "the router to learn node$i's MAC" grep -q "node=node$i mac=" "$work/router.log"
done
grep -E 'interface open' "$work/router.log" | sed 's/^time=[^ ]* //' | indent || true
echo "    every node: health_port 443 (a TCP probe every 250ms: RTT, 3 misses = down), report_port $ADMIN_PORT (GET /load every 250ms)"
echo "    score = 0.8 x min(RTT/100ms, 1) + 0.2 x load; policy weighted (share by score); rebuild when a share moves 50%;"
echo "    Maglev table of 1009 slots; grace period ${GRACE}s"

section "6. load for ${LOAD}s from $PREFIX-client: migrating and legacy clients at once"
# tcp_retrans: segments the client namespace's TCP has retransmitted.
tcp_retrans() { inns client awk '$1 == "Tcp:" && !h { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i; h = 1; next } $1 == "Tcp:" { print $c }' /proc/net/snmp; }
retrans_before=$(tcp_retrans)
# load NAME ARGS...: an anyclient load in the background, one JSON report
# a second into $work/load-NAME.jsonl.
load() {
	local name=$1
	shift
	ip netns exec "$PREFIX-client" "$work/anyclient" load --ca "$work/ca.pem" --json --progress off --report-every 1s \
		--duration "${LOAD}s" "$@" >"$work/load-$name.jsonl" 2>"$work/load-$name.err" &
	client_pids+=($!)
}
# Long-lived migrating connections, one request every 500ms for the
# whole run, so the drain has capable clients to move: until two are on
# node1 (each one's first answer names its node), at most 16.
hold() {
	local k=${#held_files[@]} file
	file=$work/held-$k.jsonl
	ip netns exec "$PREFIX-client" "$work/anyclient" get --ca "$work/ca.pem" --json --policy "$1" \
		--repeat 10000 --interval 500ms "https://$VIP4/" >"$file" 2>"$file.err" &
	held_pids+=($!)
	held_files+=("$file")
}
held_node() { [[ -s $1 ]] && sed -n '1s/.*"node":"\([^"]*\)".*/\1/p' "$1"; }
held_files=() held_pids=() on_node1=()
for policy in background rendezvous background rendezvous; do hold "$policy"; done
while :; do
	for k in "${!held_files[@]}"; do wait_for 20 "held connection $k's first answer" held_node "${held_files[k]}"; done
	on_node1=()
	for k in "${!held_files[@]}"; do [[ $(held_node "${held_files[k]}") == node1 ]] && on_node1+=("$k"); done
	((${#on_node1[@]} >= 2 || ${#held_files[@]} >= 16)) && break
	hold background
	hold rendezvous
done
load rendezvous --policy rendezvous --rate 4 --connections 40 --requests-per-conn 10 --think 300ms "https://$VIP4/"
load rendezvous6 --policy rendezvous --rate 1 --connections 10 --requests-per-conn 10 --think 300ms "https://[$VIP6]/"
load background --policy background --rate 2 --connections 30 --requests-per-conn 20 --think 250ms "https://$VIP4/"
load never --policy never --rate 3 --connections 15 --requests-per-conn 1 "https://$VIP4/"
load never6 --policy never --rate 1 --connections 5 --requests-per-conn 1 "https://[$VIP6]/"
# legacy_loop NAME PAUSE CMD...: run CMD (one connection each) with PAUSE
# seconds between runs for LOAD seconds; one line "ok" or "broken ..." a run.
legacy_loop() {
	local name=$1 pause=$2
	shift 2
	(
		end=$((SECONDS + LOAD))
		while ((SECONDS < end)); do
			if out=$("$@" 2>&1); then echo ok; else echo "broken: $(tail -n 1 <<<"$out" | cut -c1-120)"; fi
			sleep "$pause" # the pace of this client, not a wait for readiness
		done
	) >"$work/legacy-$name.log" &
	client_pids+=($!)
}
curl_get() { inns client curl -sS --fail --max-time 10 --cacert "$work/ca.pem" -o /dev/null "$1"; }
# openssl_get: one HTTP/1.0 GET over openssl s_client (a stock TLS 1.3
# stack without migration_support); ok when the node answered 200.
openssl_get() {
	local out
	out=$(printf 'GET / HTTP/1.0\r\nHost: anysched\r\n\r\n' |
		inns client timeout 10 openssl s_client -connect "$VIP4:443" -CAfile "$work/ca.pem" -verify_return_error -quiet 2>&1) || { echo "$out"; return 1; }
	grep -q '^HTTP/1\.[01] 200' <<<"$out" || { echo "$out"; return 1; }
}
legacy_loop curl 1 curl_get "https://$VIP4/"
legacy_loop curl6 1 curl_get "https://[$VIP6]/"
legacy_loop openssl 1 openssl_get
held_where=$(for f in "${held_files[@]}"; do held_node "$f"; done | sort | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')
echo "    migrating: anyclient rendezvous 4/s (IPv4) + 1/s (IPv6), 10 requests 300ms apart; background 2/s, 20 requests 250ms apart"
echo "               and ${#held_files[@]} held for the whole run (a request every 500ms; rendezvous and background): $held_where"
echo "    legacy:    anyclient --policy never 3/s (IPv4) + 1/s (IPv6); curl ~1/s (IPv4) + ~1/s (IPv6); openssl s_client ~1/s"
if [[ $DRAIN == router+node ]]; then
	echo "    events:    pool-b delay $BASE_DELAY -> $SLOW_DELAY at $((LOAD / 4))s; node1 out of the router's schedule at $((LOAD / 2))s;"
	echo "               SIGTERM node1 (drain to node2) ${DRAIN_WAIT}s later, when no slot can still hold it"
else
	echo "    events:    pool-b delay $BASE_DELAY -> $SLOW_DELAY at $((LOAD / 4))s; SIGTERM node1 (drain to node2) at $((LOAD / 2))s"
fi

# clients_running: the load generators and legacy loops (not the held
# connections, which outlast them) are still running.
clients_running() {
	local pid
	for pid in "${client_pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
	return 1
}

# The per-second line is one awk over the last scrape, the clients'
# reports and the previous second's counters ($work/line.state): a
# process or two a second, not dozens, on a busy machine.
line_awk='
function base(f) { sub(/.*\//, "", f); return f }
FILENAME ~ /line\.state$/ { prev[$1] = $2; next }
FILENAME ~ /\/m\/router$/ && !/^#/ { router[$1] = $2; next }
FILENAME ~ /\/m\/node[0-9]+$/ && !/^#/ {
	if ($1 ~ /^anynode_tokens_accepted_total/) tokens[base(FILENAME)] = $2
	next
}
FILENAME ~ /load-.*\.jsonl$/ { last[base(FILENAME)] = $0; next }
FILENAME ~ /legacy-.*\.log$/ && /^broken/ { broken++; next }
FILENAME ~ /held-[0-9]+\.jsonl$/ && /"error":"[^"]/ { broken++; next }
END {
	total = 0; moved = 0
	for (i = 1; i <= nodes; i++) {
		pool = (i <= nodes / 2) ? "a" : "b"
		f = router["anysched_node_new_flows_total{node=\"node" i "\",pool=\"pool-" pool "\"}"] + 0
		d[i] = f - prev["flows" i]; total += d[i]
		t = tokens["node" i] + 0
		moved += t - prev["tokens" i]
		print "flows" i, f > state
		print "tokens" i, t > state
	}
	for (k in last) if (match(last[k], /"broken":[0-9]+/)) broken += substr(last[k], RSTART + 9, RLENGTH - 9)
	b = d[3] + d[4]
	share_b[phase] = prev["b_" phase] + b; share_all[phase] = prev["all_" phase] + total
	for (k in prev) if (k ~ /^(b|all)_/) { split(k, kp, "_"); if (kp[2] != phase) print k, prev[k] > state }
	print "b_" phase, share_b[phase] > state
	print "all_" phase, share_all[phase] > state
	print "broken", broken + 0 > state
	printf "    %3ds  %5d %5d %5d %5d  (%3d%%)  %6d  %5d %5d %5d  %6d  %s\n", tick, d[1], d[2], d[3], d[4], total ? 100 * b / total : 0, moved,
		router["anysched_pins"], router["anysched_transition_entries"], router["anysched_reassembly_in_use"], broken, event
}'
# scrape_metrics: the router's and every node's metrics into $work/m/NAME
# (a node that stopped answering keeps its last scrape). One curl.
scrape_names=router # a word list
scrape_args=(-o "$work/m/router.new" "http://$ROUTER:9300/metrics")
for i in $(seq 1 "$NODES"); do
	scrape_names+=" node$i"
	scrape_args+=(-o "$work/m/node$i.new" "http://10.99.0.$((10 + i)):$METRICS_PORT/metrics")
done
# A scraper runs in the client namespace for the whole run and fetches
# all five in parallel when asked: no `ip netns exec` a second.
scraper_pid=
start_scraper() {
	coproc SCRAPER {
		ip netns exec "$PREFIX-client" bash -c 'while read -r _; do curl -s --no-progress-meter -Z --max-time 2 "$@" 2>/dev/null; echo done; done' scraper "${scrape_args[@]}"
	}
	scraper_pid=$SCRAPER_PID
}
scrape_metrics() {
	local name
	rm -f "$work"/m/*.new
	[[ -n $scraper_pid ]] || start_scraper
	echo scrape >&"${SCRAPER[1]}"
	read -r _ <&"${SCRAPER[0]}" || die "the metrics scraper stopped"
	for name in $scrape_names; do
		if [[ -s $work/m/$name.new ]]; then mv "$work/m/$name.new" "$work/m/$name"; fi
	done
}
# summary_line TICK PHASE EVENT: print the line for this second (awk has
# read the whole state file before it rewrites it at its END).
summary_line() {
	awk -v nodes="$NODES" -v tick="$1" -v phase="$2" -v event="$3" -v state="$work/line.state" "$line_awk" \
		"$work/line.state" "$work"/m/router "$work"/m/node? "$work"/load-*.jsonl "$work"/legacy-*.log "$work"/held-*.jsonl
}
# share PHASE: pool-b's share of the new flows in that phase, in percent.
share() { awk -v p="$1" '$1 == "b_" p { b = $2 } $1 == "all_" p { a = $2 } END { printf "%d", a ? 100 * b / a : 0 }' "$work/line.state"; }

printf '\n    %4s  %-27s %6s  %5s %5s %5s  %6s  %s\n' "t" "new flows node1..4 (pool-b)" "moved" "pins" "trans" "reasm" "broken" "event"
: >"$work/line.state"
scrape_metrics
summary_line 0 start "" >/dev/null # the counters before the load, to subtract
t0=${EPOCHREALTIME/./}
tick=0 phase=even node1_down=false drain_line=
while :; do
	# Pace the display: the next line is due at the next whole second of
	# the run (a late one skips ahead rather than drifting).
	now=${EPOCHREALTIME/./}
	tick=$(((now - t0) / 1000000 + 1))
	due=$((t0 + tick * 1000000 - now))
	sleep "$((due / 1000000)).$(printf %06d $((due % 1000000)))"
	event=
	if [[ $phase == even ]] && ((tick >= LOAD / 4)); then
		answer=$("$work/testbed" delay "node3=$SLOW_DELAY" "node4=$SLOW_DELAY") || die "testbed delay failed"
		event="testbed delay: $answer"
		phase=ramp slowed_at=$tick
	fi
	# The share after the change counts from SETTLE seconds on: the probes'
	# EWMA, the hysteresis and the slot dwell time take that long.
	if [[ $phase == ramp ]] && ((tick >= slowed_at + SETTLE)); then phase=slow; fi
	if [[ $phase == slow ]] && ((tick >= LOAD / 2)); then
		if [[ $DRAIN == router+node ]]; then
			# The operator's order: out of the schedule first, then,
			# once no slot can still send it a new flow (a slot that
			# moved less than the grace period ago keeps its owner),
			# the node drains: no new flow meets a closed listener.
			write_config "$cfg.new" node1
			mv "$cfg.new" "$cfg"
			kill -HUP "$router_pid"
			event="router config: node1 drain: true (SIGHUP)"
			phase=unscheduled unscheduled_at=$tick
		else
			scrape_metrics # node1's new flows up to the signal
			flows1_at_term=$(awk '$1 ~ /^anysched_node_new_flows_total[{]node="node1"/ { print $2 }' "$work/m/router")
			kill -TERM "${node_pids[0]}"
			event="SIGTERM node1: drain, capable clients to node2"
			phase=drained
		fi
	elif [[ $phase == unscheduled ]] && ((tick >= unscheduled_at + DRAIN_WAIT)); then
		scrape_metrics # node1's new flows up to the signal
		flows1_at_term=$(awk '$1 ~ /^anysched_node_new_flows_total[{]node="node1"/ { print $2 }' "$work/m/router")
		kill -TERM "${node_pids[0]}"
		event="SIGTERM node1: drain, capable clients to node2"
		phase=drained
	fi
	scrape_metrics
	if [[ $phase == drained ]]; then
		if [[ -z $drain_line ]] && grep -q 'msg=drained' "$work/node1.log"; then
			drain_line=$(grep -m1 'msg=drained' "$work/node1.log" | sed 's/^time=[^ ]* level=[A-Z]* //')
			event="${event:+$event; }node1 drained, exits"
		fi
		if ! $node1_down && grep -q 'msg="node down" node=node1' "$work/router.log"; then
			node1_down=true
			event="${event:+$event; }router: node1 down (3 probes missed)"
		fi
	fi
	summary_line "$tick" "${phase/unscheduled/drained}" "$event"
	clients_running || break
	((tick < LOAD + 30)) || die "the clients did not finish $((tick - LOAD))s after their load ended"
done
for pid in "${client_pids[@]}"; do wait "$pid" || true; done
client_pids=()
# The held connections have done their part (they outlived the drain):
# stop them. A request cut short by the signal is not a broken
# connection; what each one answered before is in its file.
for pid in "${held_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${held_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
# held_ok K: held connection K answered every request it made (no error,
# no error status); its answers are in held_answers.
held_ok() {
	held_answers=$(grep -c '"node":' "${held_files[$1]}" || true)
	! grep -qE '"error":"[^"]|"status":[45][0-9][0-9]' "${held_files[$1]}"
}
held_pids=()
echo "    (new flows: SYNs the router sent to each node since the line before (a second, unless the machine is busy);"
echo "     moved: migration tokens accepted at a unicast address;"
echo "     pins, trans, reasm: entries in the router's pin table, transition set (flows born on a slot that moved, kept for"
echo "     the grace period) and ClientHello reassembler at that moment; expired entries go as packets arrive)"
echo "    pool-b's share of new flows: $(share even)% while every delay was $BASE_DELAY, $(share slow)% from ${SETTLE}s after pool-b's went to $SLOW_DELAY," \
	"$(share drained)% with node1 drained as well"

section "7. the drain of node1"
stopped "${node_pids[0]}" 15 || die "node1 did not exit after its drain"
wait "${node_pids[0]}" || die "node1 exited with an error after its drain"
[[ -n $drain_line ]] || drain_line=$(grep -m1 'msg=drained' "$work/node1.log" | sed 's/^time=[^ ]* level=[A-Z]* //')
echo "    $drain_line"
grep -E 'msg="node (down|up)"' "$work/router.log" | sed 's/^time=[^ ]* //' | indent || true
answers=()
for k in "${on_node1[@]}"; do
	last=$(tail -n 1 "${held_files[k]}")
	held_ok "$k" && [[ $last == *'"node":"node2"'* && $last == *'"remote":"10.99.0.12:443"'* ]] ||
		die "held connection $k (on node1) did not end on node2's unicast address: $(tail -c 300 "${held_files[k]}") $(cat "${held_files[k]}.err")"
	answers+=("$held_answers answered, $(grep -c '"node":"node2"' "${held_files[k]}") of them by node2")
done
echo "    held connections that were on node1: ${#on_node1[@]}, each moved to node2 (10.99.0.12:443) without a failed request:"
for a in "${answers[@]}"; do echo "      $a"; done
scrape_settled
echo "    new flows the router sent node1 after its SIGTERM: $((${M[router:anysched_node_new_flows_total.node1.pool-a]:-0} - flows1_at_term))"
capable_left=$(sed -n 's/.* capable_left=\([0-9]*\).*/\1/p' <<<"$drain_line")
[[ $capable_left == 0 ]] || die "node1 exited with $capable_left capable clients that had not moved"

section "8. per node"
printf '    %-6s %-7s %-10s %9s  %12s %7s  %7s  %8s\n' node pool delay "new flows" "VIP capable" legacy resumed notified
node_capable=0 node_legacy=0
for i in $(seq 1 "$NODES"); do
	n=node$i p=a d=$BASE_DELAY
	((i > NODES / 2)) && p=b d="$BASE_DELAY->$SLOW_DELAY"
	capable=$((${M[$n:anynode_handshakes_total.true.anycast.$n.full]:-0} + ${M[$n:anynode_handshakes_total.true.anycast.$n.resumed]:-0}))
	legacy=$((${M[$n:anynode_handshakes_total.false.anycast.$n.full]:-0} + ${M[$n:anynode_handshakes_total.false.anycast.$n.resumed]:-0}))
	node_capable=$((node_capable + capable)) node_legacy=$((node_legacy + legacy))
	note= notified=$((${M[$n:anynode_notifications_sent_total.unicast.$n]:-0} + ${M[$n:anynode_notifications_sent_total.anycast.$n]:-0}))
	if ((i == 1)); then
		# Its drain came after its last scrape: its log line has the rest.
		notified=$((notified + $(sed -n 's/.* notifications=\([0-9]*\).*/\1/p' <<<"$drain_line")))
		note="  (drained: its last scrape, and its drain's log line)"
	fi
	printf '    %-6s %-7s %-10s %9d  %12d %7d  %7d  %8d%s\n' "$n" "pool-$p" "$d" "${M[router:anysched_node_new_flows_total.$n.pool-$p]:-0}" \
		"$capable" "$legacy" "${M[$n:anynode_tokens_accepted_total.$n]:-0}" \
		"$notified" "$note"
done
echo "    (new flows: the router's SYNs; VIP: handshakes on the VIP by client kind; resumed: migrations accepted"
echo "     with a token on the unicast address; notified: migrate_notify alerts sent (the drain))"

section "9. clients"
broken=0 migrating_conns=0 legacy_conns=0
for name in rendezvous rendezvous6 background never never6; do
	report "$name"
	[[ ${R[final]:-} == true ]] || die "anyclient load $name did not finish: $(tail -n 2 "$work/load-$name.err")"
	printf '    %-12s %5d connections  %5d migrated  %3d fallbacks  %3d broken  connect-to-first-byte p50 %sms p99 %sms\n' "$name" \
		"${R[connections]}" "${R[migrated]}" "${R[fallbacks]}" "${R[broken]}" "${R[ttfb_p50_ms]}" "${R[ttfb_p99_ms]}"
	broken=$((broken + R[broken]))
	case $name in
	never*) legacy_conns=$((legacy_conns + R[connections])) ;;
	*)
		migrating_conns=$((migrating_conns + R[connections]))
		((R[migrated] == R[connections])) || die "$name: ${R[migrated]} of ${R[connections]} connections migrated; want all"
		;;
	esac
	if ((R[broken] > 0)); then echo "      why: ${R[failures]}"; fi
done
held_broken=0 held_migrated=0
for k in "${!held_files[@]}"; do
	held_ok "$k" || held_broken=$((held_broken + 1))
	[[ $(tail -n 1 "${held_files[k]}") == *'"migrated":true'* ]] && held_migrated=$((held_migrated + 1))
done
printf '    %-12s %5d connections  %5d migrated  %3d fallbacks  %3d broken  (a request every 500ms for the whole run)\n' held ${#held_files[@]} "$held_migrated" 0 "$held_broken"
((held_migrated == ${#held_files[@]})) || die "held: $held_migrated of ${#held_files[@]} connections migrated; want all"
broken=$((broken + held_broken))
migrating_conns=$((migrating_conns + ${#held_files[@]}))
for name in curl curl6 openssl; do
	ok=$(grep -c '^ok' "$work/legacy-$name.log" || true)
	bad=$(grep -c '^broken' "$work/legacy-$name.log" || true)
	printf '    %-12s %5d connections  %5d migrated  %3s fallbacks  %3d broken\n' "$name" $((ok + bad)) 0 - "$bad"
	grep -m3 '^broken' "$work/legacy-$name.log" | indent | indent || true
	broken=$((broken + bad))
	legacy_conns=$((legacy_conns + ok + bad))
done

section "10. the state claim, as measured"
hellos=${M[router:anysched_clienthellos_total.seen]:-0}
mig_hellos=${M[router:anysched_clienthellos_total.migration_support]:-0}
legacy_hellos=$((hellos - mig_hellos))
pins_made=${M[router:anysched_clienthello_pin_changes_total.pin]:-0}
unpin_mig=${M[router:anysched_clienthello_pin_changes_total.unpin_migration_support]:-0}
rst_shortened=${M[router:anysched_pin_rst_shortened_total]:-0}
expired=${M[router:anysched_pin_expirations_total]:-0}
evicted=${M[router:anysched_pin_evictions_total]:-0}
pins=${M[router:anysched_pins]:-0}
inserts=${M[router:anysched_pin_inserts_total]:-0}
legacy_pins=$((inserts - unpin_mig)) # every entry not removed because its ClientHello said migration_support
retrans=$(($(tcp_retrans) - retrans_before))
row() { printf '    %-50s %s\n' "$1" "$2"; }
row "connections the clients opened through the VIP" "$((migrating_conns + legacy_conns)): $migrating_conns migrating, $legacy_conns legacy"
row "ClientHellos the router read" "$hellos: $mig_hellos with migration_support, $legacy_hellos without ($pins_made pinned)"
row "handshakes the nodes completed on the VIP" "$((node_capable + node_legacy)): $node_capable capable, $node_legacy legacy"
row "TCP segments the clients retransmitted" "$retrans (a retransmitted ClientHello is read again)"
row "pin table entries made" "$inserts: $unpin_mig removed when the rest of a ClientHello in segments said migration_support"
row "  the others (legacy flows)" "$legacy_pins: $pins held now, $expired expired, $evicted evicted ($rst_shortened shortened by the client's RST)"
row "transition entries / reassembly entries now" "${M[router:anysched_transition_entries]:-0} / ${M[router:anysched_reassembly_in_use]:-0}"
row "table generations (rebuilds on live status)" "${M[router:anysched_table_generation]:-0}"
echo "    claim, as measured:"
echo "      migrating: $migrating_conns connections, $((legacy_pins - legacy_conns)) pins ($unpin_mig held only until their ClientHello's last segment said migration_support)"
echo "      legacy:    $legacy_conns connections, $legacy_pins pins: one each ($pins still held; an RST only shortens a pin, which then expires)"
fail=()
((broken == 0)) || fail+=("$broken connection(s) broke")
((mig_hellos >= migrating_conns)) || fail+=("the router read $mig_hellos ClientHellos with migration_support; the migrating clients opened $migrating_conns connections")
((legacy_hellos >= legacy_conns)) || fail+=("the router read $legacy_hellos legacy ClientHellos; the legacy clients opened $legacy_conns connections")
((pins_made == legacy_hellos)) || fail+=("$pins_made pin decisions for $legacy_hellos legacy ClientHellos")
if ((legacy_pins != legacy_conns)); then
	why=
	if ((legacy_pins > legacy_conns && retrans > 0)); then
		# Seen on a loaded machine: a first segment of a ClientHello in
		# segments, retransmitted after the hello was read, pins its flow
		# again, and nothing that follows unpins it.
		why=" (the clients retransmitted $retrans segments: a retransmitted first segment of a ClientHello in segments is pinned again)"
	fi
	fail+=("$legacy_pins pin entries kept for $legacy_conns legacy connections ($((legacy_pins - legacy_conns)) for migrating ones): want one per legacy connection and none for a migrating one$why")
fi
((pins + expired + evicted == legacy_pins)) || fail+=("pin table: $legacy_pins legacy entries made, $pins held, $((expired + evicted)) removed: the counts do not add up")
((${#fail[@]} == 0)) || die "$(printf '%s; ' "${fail[@]}")"

section "done in $((SECONDS - started))s: 0 broken connections; the router held no state for $migrating_conns migrating connections and one pin for each of $legacy_conns legacy ones"
