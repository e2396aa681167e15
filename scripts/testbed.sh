#!/bin/sh
# testbed.sh — build, show or remove the anysched veth test bed (DESIGN.md §8),
# the same topology internal/testbed builds for Go tests:
#
#                         <prefix>-fabric: bridge br0
#       +-------------------+-------------------+-------------------+
#       | pc                | pr                | pn1 ... pnN
#   <prefix>-client     <prefix>-router      <prefix>-node1..N
#   eth0 10.99.0.1      eth0 10.99.0.2       eth0 10.99.0.(10+i), lo: VIP
#   route VIP via .2    (router on a stick)  arp_ignore=1 arp_announce=2
#
# Usage: scripts/testbed.sh up|down|status
#        scripts/testbed.sh delay NODE DELAY   (e.g. delay node2 20ms; 0 removes)
# Environment: PREFIX (default anysched), NODES (default 2),
#              VIP4 (default 10.200.0.1), VIP6 (default fd00:200::1),
#              ROUTER_QUEUES (default 1).
# Needs root and iproute2. Exit codes: 0 ok, 1 failure, 2 bad usage.
set -eu

PREFIX=${PREFIX:-anysched}
NODES=${NODES:-2}
VIP4=${VIP4:-10.200.0.1}
VIP6=${VIP6:-fd00:200::1}
ROUTER_QUEUES=${ROUTER_QUEUES:-1}
FABRIC="$PREFIX-fabric"

usage() {
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

help() {
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
}

case "$NODES" in ''|*[!0-9]*) echo "testbed.sh: NODES=$NODES: want a number 1..200" >&2; exit 2 ;; esac
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 200 ]; then echo "testbed.sh: NODES=$NODES: want 1..200" >&2; exit 2; fi
case "$ROUTER_QUEUES" in ''|*[!0-9]*|0) echo "testbed.sh: ROUTER_QUEUES=$ROUTER_QUEUES: want a positive number" >&2; exit 2 ;; esac

hosts() {
	echo "client pc 1"
	echo "router pr 2"
	i=1
	while [ "$i" -le "$NODES" ]; do
		echo "node$i pn$i $((10 + i))"
		i=$((i + 1))
	done
}

nsx() { _nsx=$1; shift; ip netns exec "$_nsx" "$@"; }

sysctls() {
	_sysns=$1; shift
	for kv in "$@"; do
		nsx "$_sysns" sysctl -qw "$kv" >/dev/null
	done
}

up() {
	if ip netns list | grep -q "^$FABRIC\b"; then
		echo "testbed.sh: $FABRIC exists; run '$0 down' first" >&2
		exit 1
	fi
	ip netns add "$FABRIC"
	ip -n "$FABRIC" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
	ip -n "$FABRIC" link set br0 up
	hosts | while read -r role port last; do
		ns="$PREFIX-$role"
		ip netns add "$ns"
		sysctls "$ns" net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		if [ "$role" = router ] && [ "$ROUTER_QUEUES" -gt 1 ]; then
			ip -n "$FABRIC" link add "$port" numtxqueues "$ROUTER_QUEUES" numrxqueues "$ROUTER_QUEUES" \
				type veth peer name eth0 netns "$ns" numtxqueues "$ROUTER_QUEUES" numrxqueues "$ROUTER_QUEUES"
		else
			ip -n "$FABRIC" link add "$port" type veth peer name eth0 netns "$ns"
		fi
		ip -n "$FABRIC" link set "$port" master br0 up
		ip -n "$ns" link set lo up
		ip -n "$ns" link set eth0 up
		ip -n "$ns" addr add "10.99.0.$last/24" dev eth0
		ip -n "$ns" addr add "fd00:99::$(printf %x "$last")/64" dev eth0 nodad
		sysctls "$ns" net.ipv4.conf.eth0.rp_filter=0
		# A frame an XDP program redirects to AF_XDP keeps the partial
		# checksum a veth sender leaves with offload on.
		if command -v ethtool >/dev/null; then
			nsx "$FABRIC" ethtool -K "$port" tx off >/dev/null 2>&1 || true
			nsx "$ns" ethtool -K eth0 tx off >/dev/null 2>&1 || true
		else
			echo "testbed.sh: no ethtool: TX checksum offload stays on" >&2
		fi
		case "$role" in
		node*)
			ip -n "$ns" addr add "$VIP4/32" dev lo
			ip -n "$ns" addr add "$VIP6/128" dev lo nodad
			sysctls "$ns" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
				net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
			;;
		esac
	done
	ip -n "$PREFIX-client" route add "$VIP4/32" via 10.99.0.2
	ip -n "$PREFIX-client" -6 route add "$VIP6/128" via fd00:99::2
	status
}

down() {
	rc=0
	for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do
		case "$ns" in
		"$FABRIC" | "$PREFIX"-client | "$PREFIX"-router | "$PREFIX"-node*) ip netns del "$ns" || rc=1 ;;
		esac
	done
	return $rc
}

status() {
	if ! ip netns list | grep -q "^$FABRIC\b"; then
		echo "testbed $PREFIX: down"
		return 0
	fi
	echo "testbed $PREFIX: VIP $VIP4 $VIP6"
	for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" | sort); do
		[ "$ns" = "$FABRIC" ] && continue
		mac=$(ip -n "$ns" -br link show dev eth0 | awk '{print $3}')
		addrs=$(ip -n "$ns" -br addr show dev eth0 | awk '{$1=$2=""; print}')
		xdp=$(ip -n "$ns" link show dev eth0 | grep -o 'prog/xdp id [0-9]*' || true)
		echo "  $ns  eth0 $mac $addrs ${xdp:+[$xdp]}"
	done
}

delay() {
	node=$1 d=$2
	case "$node" in node[0-9]*) ;; *) echo "testbed.sh: delay: NODE=$node: want node1..node$NODES" >&2; exit 2 ;; esac
	case "$d" in 0 | [0-9]*ms | [0-9]*us | [0-9]*s) ;; *) echo "testbed.sh: delay: DELAY=$d: want e.g. 20ms" >&2; exit 2 ;; esac
	ns="$PREFIX-$node"
	if ! ip netns list | grep -q "^$ns\b"; then echo "testbed.sh: no namespace $ns" >&2; exit 1; fi
	if [ "$d" = 0 ]; then
		ip -n "$ns" link show dev eth0 >/dev/null
		nsx "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
		return 0
	fi
	if ! nsx "$ns" tc qdisc replace dev eth0 root netem delay "$d" 2>/dev/null; then
		echo "testbed.sh: the kernel has no netem qdisc; Go tests get a userspace delay line from internal/testbed instead" >&2
		exit 1
	fi
}

if [ $# -eq 3 ] && [ "$1" = delay ]; then
	[ "$(id -u)" = 0 ] || { echo "testbed.sh: needs root" >&2; exit 1; }
	delay "$2" "$3"
	exit 0
fi
[ $# -eq 1 ] || usage
case "$1" in -h | --help | help) help ;; esac
if [ "$(id -u)" != 0 ]; then
	echo "testbed.sh: needs root" >&2
	exit 1
fi
case "$1" in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
