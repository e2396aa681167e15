// Command pcapng rewrites a classic pcap file as pcapng (one interface, the
// same link type and snap length, every packet with its timestamp). tcpdump
// on Debian writes only classic pcap; the capture script uses this so that
// parser/testdata also holds a pcapng file for `anysched inspect` to read.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/pflag"
)

func main() {
	fs := pflag.NewFlagSet("pcapng", pflag.ContinueOnError)
	in := fs.String("in", "", "classic pcap file to read (required)")
	out := fs.String("out", "", "pcapng file to write (required)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pcapng --in FILE.pcap --out FILE.pcapng")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "pcapng: --in and --out are required")
		os.Exit(2)
	}
	if err := convert(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pcapng:", err)
		os.Exit(1)
	}
}

func convert(inPath, outPath string) error {
	f, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", inPath, err)
	}
	o, err := os.Create(outPath)
	if err != nil {
		return err
	}
	intf := pcapgo.NgInterface{
		Name:       "veth",
		LinkType:   r.LinkType(),
		SnapLength: r.Snaplen(),
	}
	w, err := pcapgo.NewNgWriterInterface(o, intf, pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: "anysched scripts/capture/pcapng"},
	})
	if err != nil {
		o.Close()
		return err
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			o.Close()
			return fmt.Errorf("%s: %w", inPath, err)
		}
		ci.InterfaceIndex = 0
		if err := w.WritePacket(gopacket.CaptureInfo{
			Timestamp: ci.Timestamp, CaptureLength: len(data), Length: ci.Length,
		}, data); err != nil {
			o.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
