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
// The harness (harness.go, procs.go, clients.go, metrics.go) is meant to
// be reused by further scenarios: Start builds an Env; Env.Router,
// Env.Nodes and Env.Pools are the running processes; Env.Get, Env.Load,
// Env.DialLegacy, Env.OpenSSL and Env.Curl are the clients; Metrics reads
// a scrape. The tests need root, ip(8), redis-server, openssl and curl;
// a missing one fails the test (RequireTools), it never skips.
package e2e
