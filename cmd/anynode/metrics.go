package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/anysched/anysched/migration"
)

// nodeMetrics are anynode's Prometheus series. Counters come from the
// migration.Server's events as they happen; the gauge of live connections
// is read from its Stats at scrape time.
type nodeMetrics struct {
	registry      *prometheus.Registry
	handshakes    *prometheus.CounterVec
	tokensIssued  prometheus.Counter
	tokensOK      prometheus.Counter
	tokensRefused *prometheus.CounterVec
	notifications *prometheus.CounterVec
	replayErrors  prometheus.Counter
	keyReloads    *prometheus.CounterVec
}

var kinds = []migration.Kind{migration.KindAnycast, migration.KindUnicast}

func newNodeMetrics(node string, stats func() migration.Stats, draining func() bool) *nodeMetrics {
	m := &nodeMetrics{registry: prometheus.NewRegistry()}
	labels := prometheus.Labels{"node": node}
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anynode_handshakes_total", ConstLabels: labels,
		Help: "Completed TLS handshakes by listener kind (anycast: the VIP, unicast: the node's own address), type (full, resumed) and whether the client sent migration_support.",
	}, []string{"kind", "type", "capable"})
	m.tokensIssued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "anynode_tokens_issued_total", ConstLabels: labels,
		Help: "Migration tokens (seed profile) or migration_allowed tickets (draft03) sent.",
	})
	m.tokensOK = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "anynode_tokens_accepted_total", ConstLabels: labels,
		Help: "Migration tokens accepted on a resumption.",
	})
	m.tokensRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anynode_tokens_rejected_total", ConstLabels: labels,
		Help: "Migration tokens refused (answered with a full handshake), by reason.",
	}, []string{"reason"})
	m.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anynode_notifications_sent_total", ConstLabels: labels,
		Help: "migrate_notify alerts (seed) or migrate_request messages (draft03) sent, by listener kind.",
	}, []string{"kind"})
	m.replayErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "anynode_replay_store_errors_total", ConstLabels: labels,
		Help: "Replay-store failures (the token was refused: fail closed).",
	})
	m.keyReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anynode_ticket_key_reloads_total", ConstLabels: labels,
		Help: "Ticket-key file reloads by result (ok, error: the old keys stay in use).",
	}, []string{"result"})
	active := prometheus.NewDesc("anynode_connections_active", "Live connections by listener kind.", []string{"kind"}, labels)
	capable := prometheus.NewDesc("anynode_connections_capable_active", "Live connections whose client sent migration_support.", nil, labels)
	drainingDesc := prometheus.NewDesc("anynode_draining", "1 while the node drains.", nil, labels)
	m.registry.MustRegister(m.handshakes, m.tokensIssued, m.tokensOK, m.tokensRefused,
		m.notifications, m.replayErrors, m.keyReloads,
		&funcCollector{descs: []*prometheus.Desc{active, capable, drainingDesc}, collect: func(ch chan<- prometheus.Metric) {
			st := stats()
			for _, k := range kinds {
				ch <- prometheus.MustNewConstMetric(active, prometheus.GaugeValue, float64(st.Active[k]), k.String())
			}
			ch <- prometheus.MustNewConstMetric(capable, prometheus.GaugeValue, float64(st.ActiveCapable))
			d := 0.0
			if draining() {
				d = 1
			}
			ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, d)
		}},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every series exists from the start, so a rate() has a zero to begin at.
	for _, r := range migration.Reasons {
		m.tokensRefused.WithLabelValues(string(r))
	}
	for _, k := range kinds {
		m.notifications.WithLabelValues(k.String())
		for _, t := range []string{"full", "resumed"} {
			for _, c := range []string{"true", "false"} {
				m.handshakes.WithLabelValues(k.String(), t, c)
			}
		}
	}
	m.keyReloads.WithLabelValues("ok")
	m.keyReloads.WithLabelValues("error")
	return m
}

// events feeds the counters from the migration.Server.
func (m *nodeMetrics) events() migration.Events {
	return migration.Events{
		Handshake: func(kind migration.Kind, resumed, capable bool) {
			t := "full"
			if resumed {
				t = "resumed"
			}
			c := "false"
			if capable {
				c = "true"
			}
			m.handshakes.WithLabelValues(kind.String(), t, c).Inc()
		},
		TokenIssued:   m.tokensIssued.Inc,
		TokenAccepted: m.tokensOK.Inc,
		TokenRejected: func(r migration.Reason) { m.tokensRefused.WithLabelValues(string(r)).Inc() },
		NotifySent:    func(kind migration.Kind) { m.notifications.WithLabelValues(kind.String()).Inc() },
		ReplayError:   func(error) { m.replayErrors.Inc() },
	}
}

func (m *nodeMetrics) keyReloaded(ok bool) {
	if ok {
		m.keyReloads.WithLabelValues("ok").Inc()
	} else {
		m.keyReloads.WithLabelValues("error").Inc()
	}
}

// funcCollector reports values computed at scrape time.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
