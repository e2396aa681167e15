package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/anysched/anysched/migration"
	"github.com/anysched/anysched/tls13"
)

// node is one running anynode.
type node struct {
	o        *options
	log      *slog.Logger
	srv      *migration.Server
	metrics  *nodeMetrics
	cpu      *cpuMeter
	unicast  netip.AddrPort // as bound (the port is known when --unicast asked for 0)
	draining atomic.Bool
	drainReq chan struct{} // closed by the first drain request
	drainMu  sync.Once
	closers  []io.Closer
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "anynode: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel})).With("node", o.name)
	n := &node{o: o, log: log, drainReq: make(chan struct{}), cpu: newCPUMeter(time.Now())}
	defer func() {
		for _, c := range n.closers {
			c.Close()
		}
	}()

	// Everything that can be wrong with a file or a flag value is checked
	// before the first socket opens: exit 2, naming it.
	tlsCfg, keys, certPEM, code := n.tlsConfig(stderr)
	if code != exitOK {
		return code
	}
	replay, closer, err := migration.OpenReplayStore(o.replay)
	if err != nil {
		fmt.Fprintf(stderr, "anynode: --replay: %v\n", err) // the error hides any password
		return exitUsage
	}
	if closer != nil {
		n.closers = append(n.closers, closer)
	}

	unicastLn, err := listen(o.unicast)
	if err != nil {
		fmt.Fprintf(stderr, "anynode: --unicast %s: %v\n", o.unicast, err)
		return exitFailure
	}
	n.unicast = unicastLn.Addr().(*net.TCPAddr).AddrPort()
	n.unicast = netip.AddrPortFrom(n.unicast.Addr().Unmap(), n.unicast.Port())
	vipLns := make([]net.Listener, 0, len(o.vips))
	for _, v := range o.vips {
		l, err := listen(v)
		if err != nil {
			fmt.Fprintf(stderr, "anynode: --vip %s: %v\n", v, err)
			return exitFailure
		}
		vipLns = append(vipLns, l)
	}
	if certPEM != nil && o.writeCert != "" {
		if err := os.WriteFile(o.writeCert, certPEM, 0o644); err != nil {
			fmt.Fprintf(stderr, "anynode: --write-cert %s: %v\n", o.writeCert, err)
			return exitUsage
		}
	}

	n.metrics = newNodeMetrics(o.name, func() migration.Stats { return n.srv.Stats() }, n.draining.Load)
	n.srv, err = migration.NewServer(migration.ServerConfig{
		TLS:           tlsCfg,
		Profile:       o.profile,
		Unicast:       n.unicast,
		Replay:        replay,
		TokenLifetime: o.tokenLifetime,
		CodePoints:    o.codePoints,
		Events:        n.metrics.events(),
		Logger:        log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "anynode: %v\n", err)
		return exitUsage
	}

	handler, err := n.handler()
	if err != nil {
		fmt.Fprintf(stderr, "anynode: --backend: %v\n", err)
		return exitUsage
	}
	web := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	serveErr := make(chan error, len(vipLns)+3)
	serve := func(srv *http.Server, l net.Listener) {
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	vipAddrs := make([]string, 0, len(vipLns))
	for _, l := range vipLns {
		serve(web, n.srv.Listen(l, migration.KindAnycast))
		vipAddrs = append(vipAddrs, l.Addr().String())
	}
	serve(web, n.srv.Listen(unicastLn, migration.KindUnicast))

	var side []*http.Server
	attrs := []any{"vip", strings.Join(vipAddrs, ","), "unicast", n.unicast.String(), "profile", o.profileName, "replay", redactURL(o.replay)}
	if o.adminAddr != "" {
		l, err := net.Listen("tcp", o.adminAddr)
		if err != nil {
			fmt.Fprintf(stderr, "anynode: --admin-addr %s: %v\n", o.adminAddr, err)
			return exitFailure
		}
		s := &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		side = append(side, s)
		serve(s, l)
		attrs = append(attrs, "admin", l.Addr().String())
	}
	if o.metricsAddr != "" {
		l, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "anynode: --metrics-addr %s: %v\n", o.metricsAddr, err)
			return exitFailure
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{}))
		s := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		side = append(side, s)
		serve(s, l)
		attrs = append(attrs, "metrics", l.Addr().String())
	}

	var watcher *keyWatcher
	var keyTick <-chan time.Time
	if o.ticketKeys != "" {
		watcher = &keyWatcher{file: o.ticketKeys, keys: keys, log: log, reloads: n.metrics.keyReloaded}
		watcher.lastStat, _ = statStamp(o.ticketKeys)
		t := time.NewTicker(o.keyCheck)
		defer t.Stop()
		keyTick = t.C
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	log.Info("serving", attrs...)

	for {
		select {
		case err := <-serveErr:
			log.Error("serving failed", "err", err)
			return exitFailure
		case <-keyTick:
			if watcher.changed() {
				watcher.reload()
			}
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				if watcher != nil {
					watcher.reload()
				} else {
					log.Info("SIGHUP: no --ticket-keys file to reload")
				}
			case syscall.SIGUSR1:
				told := n.srv.MigrateAll(netip.AddrPort{})
				log.Info("SIGUSR1: notified capable clients", "clients", told)
			default:
				log.Info("drain requested", "signal", s.String())
				n.requestDrain()
			}
		case <-n.drainReq:
			n.drain(web, side, sigs)
			return exitOK
		}
	}
}

// tlsConfig builds the server's TLS configuration from --cert/--key (or a
// self-signed certificate) and --ticket-keys. A bad file is exit 2.
func (n *node) tlsConfig(stderr io.Writer) (*tls13.Config, *tls13.TicketKeys, []byte, int) {
	o := n.o
	var cert tls.Certificate
	var certPEM []byte
	var err error
	if o.certFile != "" {
		if cert, err = loadCert(o.certFile, o.keyFile); err != nil {
			fmt.Fprintf(stderr, "anynode: %v\n", err)
			return nil, nil, nil, exitUsage
		}
	} else {
		ips := []netip.Addr{o.unicast.Addr()}
		for _, v := range o.vips {
			ips = append(ips, v.Addr())
		}
		if cert, certPEM, err = selfSignedCert(o.name, o.serverNames, ips, time.Now()); err != nil {
			fmt.Fprintf(stderr, "anynode: self-signed certificate: %v\n", err)
			return nil, nil, nil, exitFailure
		}
	}
	var keys *tls13.TicketKeys
	if o.ticketKeys != "" {
		k, err := loadTicketKeys(o.ticketKeys)
		if err != nil {
			fmt.Fprintf(stderr, "anynode: --ticket-keys %v\n", err)
			return nil, nil, nil, exitUsage
		}
		keys = tls13.NewTicketKeys(k[0], k[1:]...)
		for i := range k {
			clear(k[i][:])
		}
	} else if keys, err = tls13.NewRandomTicketKeys(); err != nil {
		fmt.Fprintf(stderr, "anynode: ticket keys: %v\n", err)
		return nil, nil, nil, exitFailure
	}
	cfg := &tls13.Config{
		Certificates:   []tls.Certificate{cert},
		TicketKeys:     keys,
		TicketLifetime: o.ticketLife,
		NextProtos:     []string{"http/1.1"},
	}
	return cfg, keys, certPEM, exitOK
}

// listen binds a TCP listener with IP_FREEBIND, so the VIP can be bound
// before (or without) being configured on lo; on the bed it is on lo.
func listen(ap netip.AddrPort) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if ap.Addr().Is4() {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
			} else {
				const ipv6Freebind = 78 // IPV6_FREEBIND, Linux ≥ 4.15
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, ipv6Freebind, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := "tcp4"
	if ap.Addr().Is6() {
		network = "tcp6"
	}
	return lc.Listen(context.Background(), network, ap.String())
}

func (n *node) requestDrain() {
	n.drainMu.Do(func() {
		n.draining.Store(true)
		close(n.drainReq)
	})
}

// drain notifies every capable client (re-targeted to --drain-target when
// given), goes on accepting for --drain-linger (the routers learn of the
// drain from the next load report they read, and send new flows until
// then), waits up to --drain-timeout for them to leave, then closes the
// servers. Legacy clients cannot be moved; they are closed at the end.
func (n *node) drain(web *http.Server, side []*http.Server, sigs <-chan os.Signal) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), n.o.drainTimeout)
	defer cancel()
	go func() {
		// A second SIGTERM or SIGINT cuts the wait short (an operator who
		// will not wait); SIGHUP and SIGUSR1 mean nothing while draining.
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGINT {
					n.log.Warn("second stop signal: ending the drain now", "signal", s.String())
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	before := n.srv.Stats()
	left := n.srv.DrainUntil(ctx, n.o.drainTarget, start.Add(n.o.drainLinger))
	st := n.srv.Stats()
	n.log.Info("drained", "capable_at_start", before.ActiveCapable, "capable_left", left,
		"notifications", st.NotificationsSent-before.NotificationsSent,
		"anycast", st.Active[migration.KindAnycast], "unicast", st.Active[migration.KindUnicast],
		"took", time.Since(start).Round(time.Millisecond))
	shut, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	if err := web.Shutdown(shut); err != nil {
		web.Close()
	}
	for _, s := range side {
		s.Close()
	}
}
