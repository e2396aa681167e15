package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/anysched/anysched/afxdp"
	"github.com/anysched/anysched/classify"
	"github.com/anysched/anysched/internal/packettest"
	"github.com/anysched/anysched/parser"
)

// writePcap writes frames as an Ethernet pcap, a millisecond apart.
func writeEthPcap(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 0)
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: start.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// retag replaces the 802.1Q TPID of a one-tag frame.
func retag(fr []byte, tpid uint16) []byte {
	fr = append([]byte(nil), fr...)
	binary.BigEndian.PutUint16(fr[12:], tpid)
	return fr
}

// TestRunPcapClassifiesLikeTheXDPProgram is the regression test of issue
// 11 finding 11: run --pcap-in applies the XDP program's classification,
// so each frame is forwarded offline exactly when the real program
// (BPF_PROG_TEST_RUN, same VIPs) redirects it; the others are reported
// as passed to the kernel with the program's reason, apart from drops.
func TestRunPcapClassifiesLikeTheXDPProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to load the XDP program")
	}
	vip := netip.MustParseAddr("10.200.0.1")
	client := netip.MustParseAddr("10.99.0.2")
	mapped := netip.AddrFrom16(vip.As16())
	client6 := netip.MustParseAddr("fd00:99::2")
	syn := func(src, dst netip.Addr, sport uint16, vlan uint16) []byte {
		return packettest.Frame(t, packettest.TCP{Src: src, Dst: dst, SrcPort: sport, DstPort: 443, Flags: parser.TCPFlagSYN, VLAN: vlan})
	}
	udp := packettest.Frame(t, packettest.TCP{Src: client, Dst: vip, SrcPort: 5000, DstPort: 443, Flags: parser.TCPFlagSYN})
	udp[14+9] = 17 // protocol UDP; the header checksum covers it
	binary.BigEndian.PutUint16(udp[14+10:], 0)
	binary.BigEndian.PutUint16(udp[14+10:], parser.IPv4HeaderChecksum(udp[14:34]))
	frag := append([]byte(nil), udp...)
	frag[14+9] = 6
	binary.BigEndian.PutUint16(frag[14+6:], 0x00b9) // a later fragment
	binary.BigEndian.PutUint16(frag[14+10:], 0)
	binary.BigEndian.PutUint16(frag[14+10:], parser.IPv4HeaderChecksum(frag[14:34]))
	frames := []struct {
		name string
		b    []byte
		want classify.Verdict
	}{
		{"vip syn", syn(client, vip, 40000, 0), classify.Redirect},
		{"0x9100 tag", retag(syn(client, vip, 40001, 7), 0x9100), classify.Redirect},
		{"ipv6 to ::ffff:10.200.0.1", syn(client6, mapped, 40002, 0), classify.PassNotVIP},
		{"udp to the vip", udp, classify.PassVIPOther},
		{"later fragment to the vip", frag, classify.PassVIPFragment},
		{"frag needed quoting the vip", packettest.ICMPFragNeeded(t, client, vip, 40000, 443), classify.Redirect},
		{"arp", append([]byte{2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 0xc1, 8, 6}, make([]byte, 28)...), classify.PassNonIP},
	}
	prog, err := afxdp.LoadProgram(afxdp.ProgramOptions{MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := prog.SetVIPs([]netip.AddrPort{netip.AddrPortFrom(vip, 443)}); err != nil {
		t.Fatal(err)
	}
	var raw [][]byte
	for _, f := range frames {
		got, err := prog.TestRun(f.b)
		if err != nil {
			t.Fatal(err)
		}
		want := f.want
		if want == classify.Redirect {
			want = classify.PassNoSocket // no socket in a test run
		}
		if got != want {
			t.Fatalf("%s: the XDP program says %s, the test expects %s", f.name, got, want)
		}
		raw = append(raw, f.b)
	}
	in := filepath.Join(t.TempDir(), "in.pcap")
	writeEthPcap(t, in, raw)
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", writeFile(t, "r.yaml", offlineConfig), "--pcap-in", in}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("%d explanation lines for %d frames:\n%s", len(lines), len(frames), stdout.String())
	}
	for i, f := range frames {
		forwarded := strings.Contains(lines[i], " -> ")
		if forwarded != (f.want == classify.Redirect) {
			t.Errorf("%s: offline %q, XDP says %s", f.name, lines[i], f.want)
		}
		if f.want != classify.Redirect && !strings.Contains(lines[i], "to-kernel xdp="+f.want.String()) {
			t.Errorf("%s: %q does not say it went to the kernel as %s", f.name, lines[i], f.want)
		}
	}
	if !strings.Contains(stderr.String(), "passed_to_kernel=4") {
		t.Errorf("summary does not count 4 frames passed to the kernel:\n%s", stderr.String())
	}
}

// TestRunRefusesToOverwriteItsInput is the regression test of issue 11
// finding 14: --pcap-out naming the --pcap-in file (by path, symlink or
// hard link) is a usage error and the capture is left as it was.
func TestRunRefusesToOverwriteItsInput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	writeEthPcap(t, in, [][]byte{tcpFrame(t, 40000, true, nil)})
	orig, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pcap")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.pcap")
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "r.yaml", offlineConfig)
	for _, out := range []string{in, link, hard, filepath.Join(dir, ".", "in.pcap")} {
		var stdout, stderr bytes.Buffer
		code := dispatch([]string{"run", "--config", cfg, "--pcap-in", in, "--pcap-out", out}, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), "--pcap-out") || !strings.Contains(stderr.String(), "same file") {
			t.Errorf("--pcap-out %s: exit %d, stderr %q; want 2 naming --pcap-out", out, code, stderr.String())
		}
		if now, _ := os.ReadFile(in); !bytes.Equal(now, orig) {
			t.Fatalf("--pcap-out %s changed the input", out)
		}
	}
	// A different file is still written.
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", cfg, "--pcap-in", link, "--pcap-out", filepath.Join(dir, "out.pcap")}, &stdout, &stderr); code != exitOK {
		t.Fatalf("a distinct --pcap-out: exit %d\n%s", code, stderr.String())
	}
}

// A corrupt capture is a bad input like a bad flag: run and inspect both
// exit 2 and name the file, whether the damage is in the header or in a
// record after frames were already forwarded.
func TestCorruptCaptureExitsTwoFromRunAndInspect(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pcap")
	writeEthPcap(t, good, [][]byte{tcpFrame(t, 40000, true, nil), tcpFrame(t, 40001, true, nil)})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	notCapture := filepath.Join(dir, "notcapture.pcap")
	os.WriteFile(notCapture, []byte("this is not a capture file at all"), 0o644)
	cutRecord := filepath.Join(dir, "cut.pcap")
	os.WriteFile(cutRecord, data[:len(data)-10], 0o644) // the second record cut short
	cfg := writeFile(t, "r.yaml", offlineConfig)
	for _, f := range []string{notCapture, cutRecord} {
		for _, args := range [][]string{
			{"run", "--config", cfg, "--pcap-in", f},
			{"inspect", "--pcap", f},
		} {
			var stdout, stderr bytes.Buffer
			if code := dispatch(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), f) {
				t.Errorf("%v: exit %d, stderr %q; want 2 naming the file", args, code, stderr.String())
			}
		}
	}
}

// A config that costs too much to load is a usage error at start, named:
// /dev/zero is read up to the 1 MiB limit, an alias bomb is refused after
// counting, a capacity outside its range names the field.
func TestRunRefusesUnboundedConfigs(t *testing.T) {
	nodes := "[&n {name: a, address: 10.0.0.1}" + strings.Repeat(", *n", 999) + "]"
	bomb := writeFile(t, "bomb.yaml", "vips:\n  - address: 10.200.0.1\ntable:\n  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\npools:\n  - &p {name: p0, nodes: "+nodes+"}\n"+strings.Repeat("  - *p\n", 999))
	capacity := writeFile(t, "cap.yaml", offlineConfig+"pins:\n  capacity: 134217728\n")
	in := filepath.Join(t.TempDir(), "in.pcap")
	writeEthPcap(t, in, [][]byte{tcpFrame(t, 40000, true, nil)})
	for _, c := range []struct{ config, says string }{
		{"/dev/zero", "larger than 1048576 bytes"},
		{bomb, "YAML nodes with its aliases expanded"},
		{capacity, "pins.capacity"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch([]string{"run", "--config", c.config, "--pcap-in", in}, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), "--config "+c.config) || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("--config %s: exit %d, stderr %q; want 2 saying %q", c.config, code, stderr.String(), c.says)
		}
	}
}
