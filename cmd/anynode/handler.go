package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"

	"github.com/anysched/anysched/migration"
	"github.com/anysched/anysched/sched"
)

// NodeHeader names the node that served a response (the built-in handler
// and the proxy both set it; anyclient reads it).
const NodeHeader = "Anysched-Node"

type connKey struct{}

// connOf returns the migration connection a request arrived on.
func connOf(r *http.Request) *migration.ServerConn {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	sc, _ := c.(*migration.ServerConn)
	return sc
}

// connDescription says how the request's connection arrived: "anycast" or
// "unicast", and whether it resumed a session.
func connDescription(r *http.Request) (kind string, resumed bool) {
	sc := connOf(r)
	if sc == nil {
		return "unknown", false
	}
	return sc.Kind().String(), sc.TLS().ConnectionState().DidResume
}

// handler is what the node serves on the VIP and unicast listeners.
func (n *node) handler() (http.Handler, error) {
	if n.o.backend == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind, resumed := connDescription(r)
			w.Header().Set(NodeHeader, n.o.name)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			body := fmt.Sprintf("hello from %s via %s, resumed=%v\n", n.o.name, kind, resumed)
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			if r.Method != http.MethodHead {
				fmt.Fprint(w, body)
			}
		}), nil
	}
	target := n.o.backend
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Proto", "https")
			kind, _ := connDescription(pr.In)
			pr.Out.Header.Set("Anysched-Via", kind)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set(NodeHeader, n.o.name)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			n.log.Warn("backend request failed", "url", r.URL.String(), "err", err)
			w.Header().Set(NodeHeader, n.o.name)
			http.Error(w, "backend unavailable", http.StatusBadGateway)
		},
	}
	return proxy, nil
}

// statusReport is GET /status.
type statusReport struct {
	Node          string            `json:"node"`
	Profile       string            `json:"profile"`
	Unicast       string            `json:"unicast"`
	Draining      bool              `json:"draining"`
	Connections   map[string]int    `json:"connections"`
	Capable       int               `json:"capable_connections"`
	Handshakes    map[string]uint64 `json:"handshakes"`
	TokensIssued  uint64            `json:"tokens_issued"`
	TokensOK      uint64            `json:"tokens_accepted"`
	TokensRefused map[string]uint64 `json:"tokens_rejected"`
	Notifications uint64            `json:"notifications_sent"`
	ReplayErrors  uint64            `json:"replay_store_errors"`
}

func (n *node) status() statusReport {
	st := n.srv.Stats()
	r := statusReport{
		Node:          n.o.name,
		Profile:       n.o.profileName,
		Unicast:       n.unicast.String(),
		Draining:      n.draining.Load(),
		Connections:   map[string]int{},
		Capable:       st.ActiveCapable,
		Handshakes:    map[string]uint64{"full": st.HandshakesFull, "resumed": st.HandshakesResumed},
		TokensIssued:  st.TokensIssued,
		TokensOK:      st.TokensAccepted,
		TokensRefused: map[string]uint64{},
		Notifications: st.NotificationsSent,
		ReplayErrors:  st.ReplayErrors,
	}
	for _, k := range kinds {
		r.Connections[k.String()] = st.Active[k]
	}
	for _, reason := range migration.Reasons {
		r.TokensRefused[string(reason)] = st.TokensRejected[reason]
	}
	return r
}

// loadReport is GET /load, in the format sched.ParseReport reads.
func (n *node) loadReport() sched.Report {
	st := n.srv.Stats()
	active := 0
	for _, c := range st.Active {
		active += c
	}
	return sched.Report{
		Node:              n.o.name,
		ActiveConnections: int64(active),
		Capacity:          n.o.capacity,
		CPU:               n.cpu.sample(time.Now()),
		Draining:          n.draining.Load(),
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (n *node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /migrate", func(w http.ResponseWriter, r *http.Request) {
		var target netip.AddrPort
		if t := r.URL.Query().Get("target"); t != "" {
			var err error
			if target, err = migration.ParseTarget(t); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("target %q: want HOST:PORT with an IP address", t)})
				return
			}
		}
		told := n.srv.MigrateAll(target)
		n.log.Info("admin: notified capable clients", "clients", told, "target", targetString(target, n.unicast))
		writeJSON(w, http.StatusOK, map[string]any{"notified": told, "target": targetString(target, n.unicast)})
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		n.log.Info("drain requested", "by", "admin")
		writeJSON(w, http.StatusAccepted, map[string]any{"draining": true, "timeout": n.o.drainTimeout.String()})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		n.requestDrain()
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.status())
	})
	mux.HandleFunc("GET /load", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.loadReport())
	})
	return mux
}

func targetString(t, own netip.AddrPort) string {
	if !t.IsValid() {
		return own.String()
	}
	return t.String()
}
