package tls13

import "errors"

var errNoTicketKeys = errors.New("tls13: no ticket keys")

var errNotServer = errors.New("tls13: only a server sends session tickets")
