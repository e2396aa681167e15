package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// offlineConfig's node b has no MAC: offline it gets a placeholder.
var offlineConfig = strings.Replace(packettest.TwoNodeConfig("10.200.0.1"), "        mac: \"02:00:00:00:00:0b\"\n", "", 1)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunFlagErrorsNameTheFlag(t *testing.T) {
	cfg := writeFile(t, "r.yaml", offlineConfig)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--iface", "eth0"}, "--config"},
		{[]string{"--config", cfg}, "--iface"},
		{[]string{"--config", cfg, "--iface", "eth0", "--batch", "0"}, "--batch"},
		{[]string{"--config", cfg, "--iface", "eth0", "--queues", "3-1"}, "--queues"},
		{[]string{"--config", cfg, "--iface", "eth0", "--cpus", "x"}, "--cpus"},
		{[]string{"--config", cfg, "--iface", "eth0", "--xdp-mode", "skb"}, "--xdp-mode"},
		{[]string{"--config", cfg, "--iface", "eth0", "--zerocopy", "maybe"}, "--zerocopy"},
		{[]string{"--config", cfg, "--iface", "eth0", "--mode", "bounce"}, "--mode"},
		{[]string{"--config", cfg, "--iface", "eth0", "--frame-size", "3000"}, "--frame-size"},
		{[]string{"--config", cfg, "--iface", "eth0", "--rx-ring", "100"}, "--rx-ring"},
		{[]string{"--config", cfg, "--iface", "eth0", "--umem-frames", "10"}, "--umem-frames"},
		{[]string{"--config", cfg, "--iface", "eth0", "--metrics-addr", "nohost"}, "--metrics-addr"},
		{[]string{"--config", cfg, "--iface", "eth0", "--log-level", "loud"}, "--log-level"},
		{[]string{"--config", cfg, "--iface", "eth0", "--pcap-in", "x.pcap"}, "--pcap-in"},
		{[]string{"--config", cfg, "--pcap-out", "x.pcap"}, "--pcap-out"},
		{[]string{"--config", cfg, "--iface", "eth0", "--no-such-flag"}, "no-such-flag"},
		{[]string{"--config", writeFile(t, "bad.yaml", "vips: 3\n"), "--iface", "eth0"}, "vips"},
		{[]string{"--config", cfg, "--iface", "nonexistent0"}, "--iface"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch(append([]string{"run"}, c.args...), &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", c.args, code, exitUsage, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: message does not name %s:\n%s", c.args, c.want, stderr.String())
		}
	}
}

func TestRunHelpExplainsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	help := stdout.String()
	for _, f := range []string{"--config", "--iface", "--queues", "--batch", "--umem-frames", "--frame-size",
		"--rx-ring", "--tx-ring", "--fill-ring", "--completion-ring", "--xdp-mode", "--zerocopy", "--cpus",
		"--metrics-addr", "--mode", "--pcap-in", "--pcap-out", "--explain", "--log-level", "--poll-ms"} {
		if !strings.Contains(help, f) {
			t.Errorf("help does not mention %s", f)
		}
	}
}

func tcpFrame(t *testing.T, sport uint16, syn bool, payload []byte) []byte {
	flags := parser.TCPFlagACK
	if syn {
		flags = parser.TCPFlagSYN
	}
	return packettest.Frame(t, packettest.TCP{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("10.200.0.1"),
		SrcPort: sport, DstPort: 443, Seq: 1, Flags: flags, Payload: payload})
}

func TestRunForwardsACaptureOffline(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	out := filepath.Join(dir, "out.pcap")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	start := time.Unix(1700000000, 0)
	hello := []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00} // truncated ClientHello: malformed
	frames := [][]byte{tcpFrame(t, 40000, true, nil), tcpFrame(t, 40000, false, hello), {1, 2, 3}, tcpFrame(t, 40001, true, nil),
		tcpFrame(t, 40000, false, nil), tcpFrame(t, 40000, false, nil)}
	at := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, time.Minute, 10 * time.Minute}
	for i, fr := range frames {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: start.Add(at[i]), CaptureLength: len(fr), Length: len(fr)}, fr)
	}
	f.Close()
	cfg := writeFile(t, "r.yaml", offlineConfig)
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", cfg, "--pcap-in", in, "--pcap-out", out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("want one explanation per frame, got:\n%s", stdout.String())
	}
	// The pin made by the ClientHello holds a minute later and has expired
	// (idle timeout 5m) ten minutes later: capture time drives the clock.
	for i, want := range []string{"route=syn", "clienthello=", "to-kernel xdp=pass_malformed", "route=syn", "route=pin", "route=table"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q does not say %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], "pinned") {
		t.Errorf("a malformed ClientHello should pin the flow: %q", lines[1])
	}

	rf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	r, err := pcapgo.NewReader(rf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		n++
		if data[22] != 63 {
			t.Errorf("written frame %d has TTL %d, want 63", n, data[22])
		}
		if net.HardwareAddr(data[6:12]).String() != "02:00:00:00:00:01" {
			t.Errorf("written frame %d has source MAC %x", n, data[6:12])
		}
	}
	if n != 5 {
		t.Fatalf("%d frames written, want 5", n)
	}
}

// captureConfig has the VIPs of the committed captures (parser/testdata).
var captureConfig = packettest.TwoNodeConfig("203.0.113.10", "2001:db8:5::10")

// run --pcap-in reads what inspect reads: a pcapng capture and a Linux
// cooked (SLL2, tcpdump -i any) one are forwarded like an Ethernet pcap,
// and what the router sends comes out as Ethernet frames carrying the
// same network-layer packets, one hop further on.
func TestRunForwardsPcapngAndSLL2Captures(t *testing.T) {
	for _, tc := range []struct {
		file          string
		frames, toVIP int
		v6            bool
	}{
		// Go's two-segment ClientHello (ML-KEM key share) over IPv6.
		{file: "ipv6-mtu1280-go.pcapng", frames: 20, toVIP: 10, v6: true},
		{file: "curl-any-sll2.pcap", frames: 19, toVIP: 10},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := filepath.Join(testdataDir, tc.file)
			out := filepath.Join(t.TempDir(), "out.pcap")
			cfg := writeFile(t, "r.yaml", captureConfig)
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{"run", "--config", cfg, "--pcap-in", in, "--pcap-out", out}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != tc.frames {
				t.Fatalf("want %d explanations, got:\n%s", tc.frames, stdout.String())
			}
			forwarded := 0
			for _, l := range lines {
				if strings.Contains(l, " -> ") {
					forwarded++
				}
			}
			if forwarded != tc.toVIP {
				t.Errorf("%d frames forwarded, want the %d to the VIP:\n%s", forwarded, tc.toVIP, stdout.String())
			}
			if !strings.Contains(stdout.String(), `clienthello=complete migration_support=false migration_token=false sni="vip.anysched.test"`) {
				t.Errorf("no complete ClientHello for vip.anysched.test explained:\n%s", stdout.String())
			}

			rf, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			r, err := pcapgo.NewReader(rf)
			if err != nil {
				t.Fatal(err)
			}
			if r.LinkType() != layers.LinkTypeEthernet {
				t.Fatalf("output link type %v, want Ethernet", r.LinkType())
			}
			n := 0
			for {
				data, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				n++
				pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
				if tc.v6 {
					ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
					if !ok || ip.DstIP.String() != "2001:db8:5::10" || ip.HopLimit != 63 {
						t.Errorf("written frame %d is not IPv6 to the VIP with hop limit 63: %v", n, pkt)
					}
				} else {
					ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
					if !ok || ip.DstIP.String() != "203.0.113.10" || ip.TTL != 63 {
						t.Errorf("written frame %d is not IPv4 to the VIP with TTL 63: %v", n, pkt)
					}
				}
				if pkt.Layer(layers.LayerTypeTCP) == nil || pkt.ErrorLayer() != nil {
					t.Errorf("written frame %d does not decode as TCP: %v", n, pkt)
				}
				if net.HardwareAddr(data[6:12]).String() != "02:00:00:00:00:01" {
					t.Errorf("written frame %d has source MAC %x", n, data[6:12])
				}
			}
			if n != tc.toVIP {
				t.Fatalf("%d frames written, want %d", n, tc.toVIP)
			}
		})
	}
}
