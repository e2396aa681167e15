// Package e2e proves, on the veth test bed (internal/testbed) with the
// real binaries, the claim anysched exists for: the router schedules every
// new connection on live status (probes and node load reports), holds no
// state for a migration-capable connection, and breaks no established
// connection — migrating (anyclient rendezvous and background) or legacy
// (Go crypto/tls, OpenSSL s_client, curl) — while its table changes.
//
// Each test builds its own bed (pools × nodes, a Redis replay store on the
// fabric), runs `anysched run` on AF_XDP in the router namespace and
// `anynode` on every node, drives real clients from the client namespace,
// and reads the router's Prometheus metrics before and after. Every test
// logs one "FIGURE <name>: ..." line with what it measured.
//
// # The harness
//
// harness.go, procs.go, clients.go and metrics.go are meant for further
// scenarios (a new _test.go file in this package):
//
//	e := Start(t, Options{})                  // 2 pools × 2 nodes, live status
//	before := e.Router.Metrics(t)             // a scrape: Value, ByLabel, Sum, Diff
//	load := e.StartLoad(t, e.VIPURL(false), "--policy", "rendezvous", "--duration", "5s")
//	// ... hostile traffic from e.Bed.Client (testbed.Pktgen, PacketSocket) ...
//	res, code := LoadResultOf(t, load)        // code 1: a connection broke
//	c, _ := e.DialLegacy(t, e.VIP(false), netip.Addr{}) // crypto/tls, pinned
//	node, _ := e.OpenSSL(t, e.VIP(true))      // or e.Curl(t, e.VIPURL(true))
//
// Env.Router is the running anysched (Reload and ReloadNow rewrite its
// config and send SIGHUP, Restart SIGKILLs and starts it again, Proc's
// Pid and Stdout/Stderr are there for RSS and logs); Env.Nodes and
// Env.Pools are the anynodes (Status, Metrics, Kill, Signal, Restart;
// Sibling is the drain target); Env.SetPoolDelay changes a pool's delay
// while everything runs; Env.NewFlows opens new connections and returns
// the router's new flows per pool and node; Env.TableNode says where a
// fresh table puts a flow. Every process is killed in t.Cleanup and its
// output logged if the test failed; every wait has a failure deadline
// (failAfter), none is a sleep. The binaries are built once per test
// binary by RunTests (this package's TestMain), without -race.
//
// The tests need root, ip(8), redis-server, openssl and curl; a missing
// one fails the test (RequireTools), it never skips.
package e2e
