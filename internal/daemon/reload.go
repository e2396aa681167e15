package daemon

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anysched/anysched/sched"
)

// reloadStats counts config reloads by outcome.
type reloadStats struct {
	ok, failed atomic.Uint64
}

// watchReloads reloads path on every signal from hup until ctx ends. The
// file goes through the loader used at start (sched.LoadConfig: at most
// sched.MaxConfigBytes read, sched.MaxConfigYAMLNodes expanded nodes) and
// then Scheduler.Reload, whose hook updates the XDP VIP map. A file that
// fails anywhere leaves the running config in place; it is logged with
// every problem it has and counted as failed.
func (p *plane) watchReloads(ctx context.Context, path string, hup <-chan os.Signal, log *slog.Logger, st *reloadStats) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := sched.LoadConfig(path)
		if err == nil {
			err = p.s.Reload(cfg)
		}
		if err != nil {
			st.failed.Add(1)
			log.Error("reload failed; keeping the running config", "config", path, "err", err)
			continue
		}
		st.ok.Add(1)
		for _, w := range cfg.Warnings {
			log.Warn("config", "warning", w)
		}
		snap := p.s.Current()
		log.Info("config reloaded", "config", path, "generation", snap.Generation, "vips", len(snap.VIPs))
	}
}

func reloadCollector(st *reloadStats) prometheus.Collector {
	desc := prometheus.NewDesc("anysched_config_reloads_total", "Config reloads (SIGHUP) by outcome: ok, or failed (the running config stayed).", []string{"outcome"}, nil)
	return collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(st.ok.Load()), "ok")
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(st.failed.Load()), "failed")
	}}
}
