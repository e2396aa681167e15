package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// netnsDir is where `ip netns add` keeps the named namespaces.
const netnsDir = "/run/netns"

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$`)

func checkPrefix(p string) error {
	if !prefixPattern.MatchString(p) {
		return fmt.Errorf("testbed: prefix %q: want 1..40 of A-Z a-z 0-9 _ . - (not starting with one of _ . -)", p)
	}
	return nil
}

// bedNamespaces lists the namespaces of the bed named prefix that exist:
// nodes (by number), the store, router, client, then the fabric — the
// order to delete them in.
func bedNamespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	var nodes []int
	for _, e := range entries {
		role, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		if n, ok := strings.CutPrefix(role, "node"); ok {
			if i, err := strconv.Atoi(n); err == nil && i > 0 && strconv.Itoa(i) == n {
				nodes = append(nodes, i)
			}
			continue
		}
		have[role] = true
	}
	sort.Sort(sort.Reverse(sort.IntSlice(nodes)))
	var names []string
	for _, i := range nodes {
		names = append(names, fmt.Sprintf("%s-node%d", prefix, i))
	}
	for _, role := range []string{"store", "router", "client", "fabric"} {
		if have[role] {
			names = append(names, prefix+"-"+role)
		}
	}
	return names, nil
}

// Open finds the bed named prefix that an earlier process built (Build
// with Options.Prefix) and reads its hosts back. It has no delay lines.
func Open(prefix string) (*Bed, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	names, err := bedNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	b := &Bed{Prefix: prefix, Fabric: prefix + "-fabric", namespaces: names}
	found := map[string]bool{}
	for _, n := range names {
		found[n] = true
	}
	for _, role := range []string{"fabric", "client", "router"} {
		if !found[prefix+"-"+role] {
			return nil, fmt.Errorf("testbed: bed %s: namespace %s-%s missing", prefix, prefix, role)
		}
	}
	open := func(role, port string) (*Host, error) {
		h := &Host{Role: role, NS: prefix + "-" + role, Iface: "eth0", Port: port}
		if err := h.readLink(); err != nil {
			return nil, fmt.Errorf("testbed: %s: %w", h.NS, err)
		}
		err := h.Do(func() error {
			ifi, err := net.InterfaceByName(h.Iface)
			if err != nil {
				return err
			}
			h.Addr4, h.Addr6 = interfaceAddrs(ifi, Subnet4, Subnet6)
			return nil
		})
		return h, err
	}
	if b.Client, err = open("client", "pc"); err != nil {
		return nil, err
	}
	if b.Router, err = open("router", "pr"); err != nil {
		return nil, err
	}
	if found[prefix+"-store"] {
		if b.Store, err = open("store", "ps"); err != nil {
			return nil, err
		}
	}
	for i := len(names) - 1; i >= 0; i-- { // names lists the nodes last-first
		role := strings.TrimPrefix(names[i], prefix+"-")
		if !strings.HasPrefix(role, "node") {
			continue
		}
		n, err := open(role, "pn"+strings.TrimPrefix(role, "node"))
		if err != nil {
			return nil, err
		}
		b.Nodes = append(b.Nodes, n)
	}
	if len(b.Nodes) > 0 {
		err := b.Nodes[0].Do(func() error {
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				return err
			}
			b.VIP4, b.VIP6 = interfaceAddrs(lo, netip.Prefix{}, netip.Prefix{})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// interfaceAddrs returns the interface's first IPv4 and first global IPv6
// address, within the given prefixes when they are valid; loopback
// addresses are left out.
func interfaceAddrs(ifi *net.Interface, in4, in6 netip.Prefix) (a4, a6 netip.Addr) {
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil || pfx.Addr().IsLoopback() || pfx.Addr().IsLinkLocalUnicast() {
			continue
		}
		ip := pfx.Addr().Unmap()
		switch {
		case ip.Is4() && !a4.IsValid() && (!in4.IsValid() || in4.Contains(ip)):
			a4 = ip
		case ip.Is6() && !a6.IsValid() && (!in6.IsValid() || in6.Contains(ip)):
			a6 = ip
		}
	}
	return a4, a6
}

// Down removes the bed named prefix: it stops the processes still inside
// its namespaces (they would keep a namespace alive after its name is
// gone) and deletes the namespaces. A bed that is not there is not an
// error, and neither is a half-built one.
func Down(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	names, err := bedNamespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if err := killInside(filepath.Join(netnsDir, ns)); err != nil {
			errs = append(errs, err)
		}
		if _, err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killInside sends SIGKILL to every process whose network namespace is the
// one bound at path.
func killInside(path string) error {
	var want syscall.Stat_t
	if err := syscall.Stat(path, &want); err != nil {
		return fmt.Errorf("testbed: %s: %w", path, err)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", p.Name(), "ns", "net"), &st) != nil {
			continue // gone, or a kernel thread
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("testbed: kill %d in %s: %w", pid, path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckPrefix reports whether p can name a bed (Options.Prefix).
func CheckPrefix(p string) error { return checkPrefix(p) }

// Exists reports whether any namespace of the bed named prefix exists.
func Exists(prefix string) (bool, error) {
	names, err := bedNamespaces(prefix)
	return len(names) > 0, err
}
