#!/usr/bin/env bash
# capture.sh — records the real ClientHellos in parser/testdata/.
#
# Two network namespaces joined by one veth pair: the server namespace holds
# the VIP (203.0.113.10 and 2001:db8:5::10, port 443) and runs tlsserver (a Go
# HTTPS server with a throwaway self-signed certificate); the client namespace
# (198.51.100.7, 2001:db8:c::7) runs one client per capture while tcpdump
# (snaplen 0, Ethernet link type) records the server-side veth. TSO/GSO are off
# on both veth ends so the pcaps hold the wire-sized TCP segments a router
# sees, not one GSO super-packet. Everything is torn down on exit.
#
# usage: sudo scripts/capture/capture.sh [OUTDIR]      (default parser/testdata)
#        CAPTURES="curl chromium" ... records only the named captures.
# needs: root, go, iproute2, ethtool, tcpdump, curl, openssl, chromium
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
	echo "capture.sh: must run as root (it creates network namespaces)" >&2
	exit 2
fi
for tool in go ip ethtool tcpdump curl openssl chromium ss; do
	if ! command -v "$tool" >/dev/null; then
		echo "capture.sh: $tool not found (apt-get install iproute2 ethtool tcpdump curl openssl chromium)" >&2
		exit 2
	fi
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-$repo/parser/testdata}")
mkdir -p "$out"

tag=$$
ns_srv=capsrv$tag
ns_cli=capcli$tag
if_srv=cs$tag
if_cli=cc$tag
vip4=203.0.113.10
cli4=198.51.100.7
vip6=2001:db8:5::10
cli6=2001:db8:c::7
sni=vip.anysched.test
marker_port=9
work=$(mktemp -d /tmp/anysched-capture.XXXXXX)
server_pid=
tcpdump_pid=

cleanup() {
	set +e
	[[ -n $tcpdump_pid ]] && kill "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
	[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	ip netns del "$ns_cli" 2>/dev/null
	ip netns del "$ns_srv" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

in_srv() { ip netns exec "$ns_srv" "$@"; }
in_cli() { ip netns exec "$ns_cli" "$@"; }

# wait_for DESCRIPTION COMMAND...: polls COMMAND until it succeeds, up to 20 s.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + 20))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			echo "capture.sh: timed out waiting for $what" >&2
			exit 1
		fi
		sleep 0.05
	done
}

echo "== building helpers"
(cd "$repo" && go build -o "$work/bin/" ./scripts/capture/...)

echo "== namespaces $ns_srv, $ns_cli"
ip netns add "$ns_srv"
ip netns add "$ns_cli"
ip link add "$if_cli" netns "$ns_cli" type veth peer name "$if_srv" netns "$ns_srv"
for side in srv cli; do
	ns=ns_$side
	ifc=if_$side
	ip -n "${!ns}" link set lo up
	ip -n "${!ns}" link set "${!ifc}" up
	ip netns exec "${!ns}" ethtool -K "${!ifc}" tso off gso off gro off >/dev/null
done
ip -n "$ns_srv" addr add "$vip4/32" dev "$if_srv"
ip -n "$ns_srv" -6 addr add "$vip6/128" dev "$if_srv" nodad
ip -n "$ns_srv" route add "$cli4/32" dev "$if_srv"
ip -n "$ns_srv" -6 route add "$cli6/128" dev "$if_srv"
ip -n "$ns_cli" addr add "$cli4/32" dev "$if_cli"
ip -n "$ns_cli" -6 addr add "$cli6/128" dev "$if_cli" nodad
ip -n "$ns_cli" route add "$vip4/32" dev "$if_cli"
ip -n "$ns_cli" -6 route add "$vip6/128" dev "$if_cli"

# Background processes start with ip netns exec directly, not through a
# function: then $! is the process itself (ip execs it) and kill reaches it.
ip netns exec "$ns_srv" "$work/bin/tlsserver" --listen "$vip4:443" --listen "[$vip6]:443" --name "$sni" \
	2>"$work/server.log" &
server_pid=$!
listening() { in_srv ss -Hltn "( sport = :443 )" | grep -q .; }
wait_for "tlsserver to listen" listening

# Connections still open on the server side (anything but LISTEN/TIME-WAIT).
open_conns() { in_srv ss -Htan "( sport = :443 )" | grep -v -e '^LISTEN' -e '^TIME-WAIT' | grep -q .; }
no_open_conns() { ! open_conns; }
tcpdump_ready() { grep -q 'listening on' "$work/tcpdump.log"; }

# wanted NAME: whether $CAPTURES (default: all) names this capture.
wanted() { [[ -z ${CAPTURES:-} || " $CAPTURES " == *" $1 "* ]]; }
capture_if=$if_srv

# capture NAME COMMAND...: records everything on port 443 while COMMAND runs
# in the client namespace, until every connection it made has closed. Then
# the client sends one UDP marker datagram; once tcpdump has written it, all
# earlier packets are in the file too, and the marker is filtered out.
capture() {
	local name=$1
	shift
	local file=$out/$name.pcap
	local raw=$work/$name.raw.pcap
	wanted "$name" || return 0
	echo "== $name"
	: >"$work/tcpdump.log"
	ip netns exec "$ns_srv" tcpdump -i "$capture_if" -s 0 -U --immediate-mode -n -w "$raw" \
		"tcp port 443 or (udp dst port $marker_port)" 2>"$work/tcpdump.log" &
	tcpdump_pid=$!
	wait_for "tcpdump to start" tcpdump_ready
	in_cli "$@" || {
		echo "capture.sh: client for $name failed" >&2
		exit 1
	}
	wait_for "the connections of $name to close" no_open_conns
	marker_seen() {
		in_cli bash -c "echo marker >/dev/udp/$vip4/$marker_port"
		tcpdump -r "$raw" -n "udp dst port $marker_port" 2>/dev/null | grep -q .
	}
	wait_for "tcpdump to write the marker" marker_seen
	kill -TERM "$tcpdump_pid"
	wait "$tcpdump_pid" || true
	tcpdump_pid=
	tcpdump -r "$raw" -w "$file" 'tcp port 443' 2>/dev/null
	tcpdump -r "$file" -n 2>/dev/null | wc -l | xargs printf '   %s packets, '
	stat -c '%s bytes' "$file"
}

capture curl timeout 30 curl -sS -k -o /dev/null --resolve "$sni:443:$vip4" "https://$sni/"

capture openssl-s_client timeout 30 sh -c \
	"printf 'GET / HTTP/1.0\r\nHost: $sni\r\n\r\n' | openssl s_client -quiet -connect $vip4:443 -servername $sni 2>/dev/null >/dev/null"

capture go-crypto-tls timeout 30 "$work/bin/gohello" --addr "$vip4:443" --sni "$sni"

chrome_profile=$work/chromium-profile
mkdir -p "$chrome_profile"
capture chromium timeout 60 sh -c 'exec "$@" >/dev/null 2>/dev/null' chromium chromium --headless --no-sandbox --disable-gpu --disable-quic \
	--no-first-run --disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$chrome_profile" --ignore-certificate-errors \
	--host-resolver-rules="MAP $sni $vip4" --dump-dom "https://$sni/"

capture utls-support-first timeout 30 "$work/bin/utlshello" --addr "$vip4:443" --sni "$sni" --support-at first --mlkem
capture utls-support-second timeout 30 "$work/bin/utlshello" --addr "$vip4:443" --sni "$sni" --support-at last --mlkem
capture utls-support-token timeout 30 "$work/bin/utlshello" --addr "$vip4:443" --sni "$sni" --support-at first --mlkem=false --token

# A 3 KB ClientHello (ML-KEM share and 1500 bytes of padding) sent by hand
# as three TLS records of at most 1200 bytes, so three TCP segments, with
# migration_support last: in the third record and the third segment. The
# server answers with its ServerHello; the client then closes.
capture utls-record-split timeout 30 "$work/bin/utlshello" --addr "$vip4:443" --sni "$sni" --support-at last --mlkem --pad 1500 --record-size 1200

# Two flows that carry no ClientHello: a connection that sends nothing, and
# plain HTTP sent to the TLS port.
capture no-clienthello timeout 30 sh -c \
	"bash -c 'exec 3<>/dev/tcp/$vip4/443; exec 3<&-' && curl -s -o /dev/null --max-time 10 http://$vip4:443/ || true"

# The same curl request recorded with tcpdump -i any: link type LINUX_SLL2
# (libpcap >= 1.10), the cooked header instead of Ethernet.
capture_if=any
capture curl-any-sll2 timeout 30 curl -sS -k -o /dev/null --resolve "$sni:443:$vip4" "https://$sni/"
capture_if=$if_srv

# IPv6 over a 1280-byte MTU (the IPv6 minimum): MSS 1220, so the Go client's
# ML-KEM ClientHello spans two segments. Written as pcapng.
ip -n "$ns_srv" link set "$if_srv" mtu 1280
ip -n "$ns_cli" link set "$if_cli" mtu 1280
capture ipv6-mtu1280-go timeout 30 "$work/bin/gohello" --addr "[$vip6]:443" --sni "$sni"
if wanted ipv6-mtu1280-go; then
	"$work/bin/pcapng" --in "$out/ipv6-mtu1280-go.pcap" --out "$out/ipv6-mtu1280-go.pcapng"
	rm "$out/ipv6-mtu1280-go.pcap"
	stat -c '   pcapng: %s bytes' "$out/ipv6-mtu1280-go.pcapng"
fi

echo "== done: $out"
