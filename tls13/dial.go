package tls13

import (
	"context"
	"net"
)

// Client returns a client-side Conn over conn. The handshake runs on the
// first Read, Write or Handshake.
func Client(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config, isClient: true, firstRecord: true}
}

// Server returns a server-side Conn over conn.
func Server(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config}
}

// Dial connects to addr and runs the client handshake. If
// config.ServerName is empty, the host part of addr is used.
func Dial(ctx context.Context, network, addr string, config *Config) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := config
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err == nil {
			c := *config
			c.ServerName = host
			cfg = &c
		}
	}
	c := Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

type listener struct {
	net.Listener
	config *Config
}

// NewListener wraps inner so that Accept returns server-side *Conn values
// (as net.Conn); the handshake runs on first use.
func NewListener(inner net.Listener, config *Config) net.Listener {
	return &listener{Listener: inner, config: config}
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.config), nil
}
