// Command testbed builds, shows and removes the veth test bed of package
// internal/testbed for humans and scripts (scripts/testbed.sh, the demo):
// the same topology, addresses and offload settings the Go tests get.
//
//	testbed [flags] up       build the bed (exit 1 if one of that prefix exists)
//	testbed [flags] status   print its hosts, or "down"
//	testbed [flags] down     remove it, with anything still running inside;
//	                         idempotent
//	testbed [flags] delay [nodeI=DURATION ...]
//	                         change delays on a running `up --delay` and
//	                         print every node's delay (none given: print)
//
// Namespaces are <prefix>-fabric (the bridge), <prefix>-client,
// <prefix>-router and <prefix>-node1..N; every host's fabric interface is
// eth0, 10.99.0.1 (client), .2 (router), .10+i (node i), fd00:99::… alike.
//
// Every flag also reads an environment variable, as scripts/testbed.sh
// always did: PREFIX, NODES, VIP4, VIP6, ROUTER_QUEUES. `up --delay
// node2=20ms` puts userspace delay lines in front of every node (the
// delay on node2, none on the others); they live in this process, so `up`
// then stays in the foreground, serves a control socket
// (/run/anysched-testbed/<prefix>.sock) through which `testbed delay
// node3=40ms` changes a delay while the bed runs, and takes the bed down
// on SIGINT or SIGTERM.
//
// Exit codes: 0 ok, 1 failure (not root, the bed exists, a command failed),
// 2 bad usage (the message names the flag).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/vishvananda/netlink"

	"github.com/anysched/anysched/internal/testbed"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, waitForSignal))
}

// waitForSignal blocks until SIGINT or SIGTERM.
func waitForSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
	signal.Stop(c)
}

type options struct {
	action string
	prefix string
	build  testbed.Options
	// delayWords are the delay action's nodeI=DURATION words, checked
	// for form here and against the bed's node count by the bed.
	delayWords []string
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer, wait func()) int {
	opts, err := parse(args, getenv, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "testbed: %v\n", err)
		return exitUsage
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "testbed: needs root (it creates network namespaces)")
		return exitFailure
	}
	switch opts.action {
	case "up":
		err = up(opts, stdout, stderr, wait)
	case "down":
		err = testbed.Down(opts.prefix)
		removeStaleControl(opts.prefix)
	case "status":
		err = status(opts.prefix, stdout)
	case "delay":
		var answer string
		if answer, err = requestDelays(opts.prefix, opts.delayWords); err == nil {
			fmt.Fprintln(stdout, answer)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "testbed %s: %v\n", opts.action, err)
		return exitFailure
	}
	return exitOK
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := pflag.NewFlagSet("testbed", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: testbed [flags] up|down|status")
		fmt.Fprintln(stderr, "       testbed [flags] delay [nodeI=DURATION ...]   (a bed brought up with --delay)")
		fs.PrintDefaults()
	}
	prefix := fs.String("prefix", env("PREFIX", "anysched"), "namespace name prefix (env PREFIX)")
	nodes := fs.String("nodes", env("NODES", "2"), "number of service nodes, 1..200 (env NODES)")
	vip4 := fs.String("vip4", env("VIP4", testbed.DefaultVIP4.String()), "IPv4 VIP on the nodes' lo (env VIP4)")
	vip6 := fs.String("vip6", env("VIP6", testbed.DefaultVIP6.String()), "IPv6 VIP on the nodes' lo (env VIP6)")
	queues := fs.String("router-queues", env("ROUTER_QUEUES", "1"), "RX/TX queues of the router's veth (env ROUTER_QUEUES)")
	delays := fs.StringArray("delay", nil, "NODE=DURATION: delay a node's egress (e.g. node2=20ms; up only, stays in the foreground)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	var o options
	if fs.NArg() == 0 || fs.Arg(0) != "delay" && fs.NArg() != 1 {
		fs.Usage()
		return o, errors.New("want exactly one of up, down, status (or delay nodeI=DURATION ...)")
	}
	o.action, o.prefix = fs.Arg(0), *prefix
	switch o.action {
	case "up", "down", "status":
	case "delay":
		for _, w := range fs.Args()[1:] {
			if _, err := parseDelay(w, 0); err != nil {
				return o, fmt.Errorf("delay %v", err)
			}
		}
		o.delayWords = fs.Args()[1:]
	default:
		return o, fmt.Errorf("unknown action %q: want up, down, status or delay", o.action)
	}
	if err := testbed.CheckPrefix(o.prefix); err != nil {
		return o, fmt.Errorf("--prefix: %v", err)
	}
	n, err := strconv.Atoi(*nodes)
	if err != nil || n < 1 || n > 200 {
		return o, fmt.Errorf("--nodes %q: want a number 1..200", *nodes)
	}
	o.build.Nodes, o.build.Prefix = n, o.prefix
	if o.build.VIP4, err = netip.ParseAddr(*vip4); err != nil || !o.build.VIP4.Is4() {
		return o, fmt.Errorf("--vip4 %q: want an IPv4 address", *vip4)
	}
	if o.build.VIP6, err = netip.ParseAddr(*vip6); err != nil || !o.build.VIP6.Is6() || o.build.VIP6.Is4In6() {
		return o, fmt.Errorf("--vip6 %q: want an IPv6 address", *vip6)
	}
	if q, err := strconv.Atoi(*queues); err != nil || q < 1 || q > 256 {
		return o, fmt.Errorf("--router-queues %q: want a number 1..256", *queues)
	} else {
		o.build.RouterQueues = q
	}
	if len(*delays) > 0 && o.action != "up" {
		return o, errors.New("--delay: only with up")
	}
	for _, d := range *delays {
		a, err := parseDelay(d, n)
		if err != nil {
			return o, fmt.Errorf("--delay %v", err)
		}
		for len(o.build.NodeDelay) < a.node {
			o.build.NodeDelay = append(o.build.NodeDelay, 0)
		}
		o.build.NodeDelay[a.node-1] = a.delay
	}
	return o, nil
}

func up(o options, stdout, stderr io.Writer, wait func()) error {
	if exists, err := testbed.Exists(o.prefix); err != nil {
		return err
	} else if exists {
		return fmt.Errorf("a bed named %s exists; run 'testbed down' first", o.prefix)
	}
	b, err := testbed.Build(o.build)
	if err != nil {
		if b != nil {
			b.Close()
		}
		return err
	}
	if err := status(o.prefix, stdout); err != nil {
		return errors.Join(err, b.Close())
	}
	if len(o.build.NodeDelay) == 0 {
		return nil
	}
	control, err := serveDelayControl(b, o.build.NodeDelay)
	if err != nil {
		return errors.Join(fmt.Errorf("control socket: %w", err), b.Close())
	}
	fmt.Fprintf(stderr, "testbed: delay lines run in this process (pid %d); change them with 'testbed --prefix %s delay nodeI=DURATION' (socket %s); SIGINT or SIGTERM takes the bed down\n",
		os.Getpid(), o.prefix, control.path)
	wait()
	control.close()
	return b.Close()
}

func status(prefix string, w io.Writer) error {
	if exists, err := testbed.Exists(prefix); err != nil {
		return err
	} else if !exists {
		fmt.Fprintf(w, "testbed %s: down\n", prefix)
		return nil
	}
	b, err := testbed.Open(prefix)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "testbed %s: VIP %s %s\n", prefix, b.VIP4, b.VIP6)
	for _, h := range b.Hosts() {
		xdp := ""
		err := h.Do(func() error {
			l, err := netlink.LinkByName(h.Iface)
			if err != nil {
				return err
			}
			if x := l.Attrs().Xdp; x != nil && x.Attached {
				xdp = fmt.Sprintf(" [prog/xdp id %d]", x.ProgId)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", h.NS, err)
		}
		fmt.Fprintf(w, "  %-20s %s %s %s %s%s\n", h.NS, h.Iface, net.HardwareAddr(h.MAC[:]), h.Addr4, h.Addr6, xdp)
	}
	return nil
}
