package sched

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const baseConfig = `vips:
  - address: 10.200.0.1
    port: 443
    tls: true
pools:
  - name: a
    nodes:
      - name: a1
        address: 10.201.0.11
        health_port: 8080
        report_port: 9100
        mac: "02:00:00:00:00:01"
        capacity: 100
table:
  size: 65537
  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(baseConfig), "base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Pools[0].Nodes[0]
	if n.ReportURL != "http://10.201.0.11:9100/load" || !n.HasMAC || n.MAC != [6]byte{2, 0, 0, 0, 0, 1} || n.Pool != "a" {
		t.Fatalf("node %+v", n)
	}
	if cfg.Policy != PolicyBestPool || cfg.GracePeriod != DefaultGracePeriod || cfg.Probe.DownAfter != 3 ||
		cfg.Pins.Capacity != DefaultPinCapacity || cfg.Hysteresis.Threshold != 0.1 {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if len(cfg.Warnings) != 0 {
		t.Fatalf("warnings %v", cfg.Warnings)
	}
}

// Every validation error names the field and where it is.
func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml, field, pos, msg string
	}{
		{"not yaml", "vips: [", "", "1:1", "not valid YAML"},
		{"not yaml, line known", "vips:\n  - a\n - b\n", "", "2:1", "not valid YAML: line 2"},
		{"duplicate node address", strings.Replace(baseConfig, "        capacity: 100\n", "        capacity: 100\n      - name: a2\n        address: 10.201.0.11\n", 1), "pools[0].nodes[1].address", "15:18", "also node \"a1\""},
		{"empty", "", "", "", "empty config"},
		{"not a mapping", "- 1\n", "", "1:1", "want a mapping"},
		{"unknown top key", baseConfig + "frobnicate: 1\n", "frobnicate", "17:1", "unknown key"},
		{"unknown node key", strings.Replace(baseConfig, "capacity: 100", "capcity: 100", 1), "pools[0].nodes[0].capcity", "13:9", "unknown key"},
		{"duplicate key", baseConfig + "policy: weighted\npolicy: best-pool\n", "policy", "18:1", "given twice"},
		{"missing seed", strings.Replace(baseConfig, "  seed: 6a1c5e0f3b9d47a2c8e1f05d7b3a9c64\n", "", 1), "table.seed", "1:1", "required"},
		{"short seed", strings.Replace(baseConfig, "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64", "6a1c", 1), "table.seed", "16:9", "32 hex digits"},
		{"zero seed", strings.Replace(baseConfig, "6a1c5e0f3b9d47a2c8e1f05d7b3a9c64", "00000000000000000000000000000000", 1), "table.seed", "16:9", "all-zero"},
		{"non-prime size", strings.Replace(baseConfig, "65537", "65536", 1), "table.size", "15:9", "not prime"},
		{"size too small", strings.Replace(baseConfig, "65537", "2", 1), "table.size", "15:9", "from 3"},
		{"size not a number", strings.Replace(baseConfig, "65537", "big", 1), "table.size", "15:9", "whole number"},
		{"missing vips", strings.Replace(baseConfig, "vips:\n  - address: 10.200.0.1\n    port: 443\n    tls: true\n", "", 1), "vips", "1:1", "required"},
		{"empty vips", strings.Replace(baseConfig, "vips:\n  - address: 10.200.0.1\n    port: 443\n    tls: true\n", "vips: []\n", 1), "vips", "1:7", "empty"},
		{"bad vip address", strings.Replace(baseConfig, "10.200.0.1", "10.200.0.300", 1), "vips[0].address", "2:14", "IPv4 or IPv6"},
		{"multicast vip", strings.Replace(baseConfig, "10.200.0.1", "224.0.0.1", 1), "vips[0].address", "2:14", "not a unicast"},
		{"vip port 0", strings.Replace(baseConfig, "port: 443", "port: 0", 1), "vips[0].port", "3:11", "from 1 to 65535"},
		{"vip tls not bool", strings.Replace(baseConfig, "tls: true", "tls: yes please", 1), "vips[0].tls", "4:10", "true or false"},
		{"vip without address", strings.Replace(baseConfig, "  - address: 10.200.0.1\n    port: 443", "  - port: 443", 1), "vips[0].address", "2:5", "required"},
		{"duplicate vip", strings.Replace(baseConfig, "    tls: true\n", "    tls: true\n  - address: 10.200.0.1\n", 1), "vips[1]", "5:5", "duplicate VIP"},
		{"missing pools", strings.Replace(baseConfig, "pools:", "poolz:", 1), "poolz", "5:1", "unknown key"},
		{"pool without name", strings.Replace(baseConfig, "  - name: a\n    nodes:", "  - nodes:", 1), "pools[0].name", "6:5", "required"},
		{"pool without nodes", strings.Replace(baseConfig, "    nodes:\n      - name: a1", "    nodez:\n      - name: a1", 1), "pools[0].nodez", "7:5", "unknown key"},
		{"bad node name", strings.Replace(baseConfig, "name: a1", "name: a/1", 1), "pools[0].nodes[0].name", "8:15", "letters, digits"},
		{"node without address", strings.Replace(baseConfig, "        address: 10.201.0.11\n", "", 1), "pools[0].nodes[0].address", "8:9", "required"},
		{"bad node address", strings.Replace(baseConfig, "10.201.0.11", "fe80::1%eth0", 1), "pools[0].nodes[0].address", "9:18", "without zone"},
		{"bad health port", strings.Replace(baseConfig, "health_port: 8080", "health_port: 70000", 1), "pools[0].nodes[0].health_port", "10:22", "0 to 65535"},
		{"bad mac", strings.Replace(baseConfig, `"02:00:00:00:00:01"`, "02:00:00", 1), "pools[0].nodes[0].mac", "12:14", "48-bit MAC"},
		{"multicast mac", strings.Replace(baseConfig, `"02:00:00:00:00:01"`, `"01:00:5e:00:00:01"`, 1), "pools[0].nodes[0].mac", "12:14", "not a unicast MAC"},
		{"zero capacity", strings.Replace(baseConfig, "capacity: 100", "capacity: 0", 1), "pools[0].nodes[0].capacity", "13:19", "from 1"},
		{"report and report_port", strings.Replace(baseConfig, "report_port: 9100", "report_port: 9100\n        report: http://x/load", 1), "pools[0].nodes[0].report_port", "11:22", "not both"},
		{"bad report url", strings.Replace(baseConfig, "report_port: 9100", "report: ftp://x/load", 1), "pools[0].nodes[0].report", "11:17", "http://"},
		{"duplicate node", strings.Replace(baseConfig, "        capacity: 100\n", "        capacity: 100\n      - name: a1\n        address: 10.201.0.12\n", 1), "pools[0].nodes[1].name", "14:15", "duplicate node name"},
		{"duplicate pool", strings.Replace(baseConfig, "table:", "  - name: a\n    nodes:\n      - name: b1\n        address: 10.201.0.21\ntable:", 1), "pools[1].name", "14:11", "duplicate pool name"},
		{"bad policy", baseConfig + "policy: cheapest\n", "policy", "17:9", "unknown policy"},
		{"bad grace", baseConfig + "grace_period: 5\n", "grace_period", "17:15", "duration"},
		{"negative grace", baseConfig + "grace_period: -1s\n", "grace_period", "17:15", "duration"},
		{"bad threshold", baseConfig + "hysteresis:\n  threshold: 2\n", "hysteresis.threshold", "18:14", "from 0 to 1"},
		{"bad min interval", baseConfig + "hysteresis:\n  min_interval: soon\n", "hysteresis.min_interval", "18:17", "duration"},
		{"probe timeout > interval", baseConfig + "probe:\n  interval: 100ms\n  timeout: 1s\n", "probe.timeout", "19:12", "exceeds probe.interval"},
		{"probe down_after 0", baseConfig + "probe:\n  down_after: 0\n", "probe.down_after", "18:15", "from 1"},
		{"probe up_after", baseConfig + "probe:\n  up_after: many\n", "probe.up_after", "18:13", "whole number"},
		{"probe alpha", baseConfig + "probe:\n  ewma_alpha: 0\n", "probe.ewma_alpha", "18:15", "above 0"},
		{"reports timeout > interval", baseConfig + "reports:\n  interval: 1s\n  timeout: 2s\n", "reports.timeout", "19:12", "exceeds reports.interval"},
		{"reports stale < interval", baseConfig + "reports:\n  stale_after: 10ms\n", "reports.stale_after", "18:16", "shorter than"},
		{"score weights zero", baseConfig + "score:\n  delay_weight: 0\n  load_weight: 0\n", "score", "19:16", "both 0"},
		{"score delay ref", baseConfig + "score:\n  delay_reference: 0s\n", "score.delay_reference", "18:20", "duration"},
		{"pins capacity", baseConfig + "pins:\n  capacity: 4\n", "pins.capacity", "18:13", "from 8"},
		{"pins idle", baseConfig + "pins:\n  idle_timeout: forever\n", "pins.idle_timeout", "18:17", "duration"},
		{"transitions capacity", baseConfig + "transitions:\n  capacity: -1\n", "transitions.capacity", "18:13", "whole number"},
		{"section not a mapping", baseConfig + "probe: 1s\n", "probe", "17:8", "want a mapping"},
		{"list not a list", strings.Replace(baseConfig, "vips:\n  - address: 10.200.0.1\n    port: 443\n    tls: true\n", "vips: 10.200.0.1\n", 1), "vips", "1:7", "want a list"},
		{"null value", baseConfig + "policy:\n", "policy", "17:8", "want a single value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml), "r.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a ConfigError", err, err)
			}
			msg := err.Error()
			want := "r.yaml"
			if c.pos != "" {
				want += ":" + c.pos
			}
			want += ": "
			if c.field != "" {
				want += c.field + ": "
			}
			if !strings.Contains(msg, want) || !strings.Contains(msg, c.msg) {
				t.Fatalf("error\n%s\nwant it to contain %q and %q", msg, want, c.msg)
			}
		})
	}
}

func TestParseConfigSmallTableWarning(t *testing.T) {
	cfg, err := ParseConfig([]byte(strings.Replace(baseConfig, "65537", "97", 1)), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "table.size (r.yaml:15:9)") || !strings.Contains(cfg.Warnings[0], "1%") {
		t.Fatalf("warnings %q", cfg.Warnings)
	}
}

func TestParseConfigAllFields(t *testing.T) {
	cfg, err := ParseConfig([]byte(baseConfig+`policy: weighted
grace_period: 3s
hysteresis:
  threshold: 0.2
  min_interval: 1s
probe:
  interval: 200ms
  timeout: 100ms
  down_after: 2
  up_after: 4
  ewma_alpha: 0.5
reports:
  interval: 300ms
  timeout: 200ms
  stale_after: 2s
score:
  delay_reference: 20ms
  delay_weight: 1
  load_weight: 2
pins:
  capacity: 1024
  idle_timeout: 1m
  rst_idle_timeout: 2s
transitions:
  capacity: 512
`), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Policy: PolicyWeighted, GracePeriod: 3 * time.Second,
		Hysteresis:  Hysteresis{0.2, time.Second},
		Probe:       ProbeConfig{200 * time.Millisecond, 100 * time.Millisecond, 2, 4, 0.5},
		Reports:     ReportConfig{300 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second},
		Score:       ScoreConfig{20 * time.Millisecond, 1, 2},
		Pins:        PinConfig{1024, time.Minute, 2 * time.Second},
		Transitions: TransitionConfig{512},
	}
	if cfg.Policy != want.Policy || cfg.GracePeriod != want.GracePeriod || cfg.Hysteresis != want.Hysteresis ||
		cfg.Probe != want.Probe || cfg.Reports != want.Reports || cfg.Score != want.Score || cfg.Pins != want.Pins ||
		cfg.Transitions != want.Transitions {
		t.Fatalf("got %+v", cfg)
	}
}

func TestReloadRejectsTableChanges(t *testing.T) {
	cfg, err := ParseConfig([]byte(baseConfig), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for field, y := range map[string]string{
		"table.size": strings.Replace(baseConfig, "65537", "131071", 1),
		"table.seed": strings.Replace(baseConfig, "6a1c5e0f", "7a1c5e0f", 1),
	} {
		c2, err := ParseConfig([]byte(y), "r.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Reload(c2)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("reload changing %s: %v", field, err)
		}
	}
	if s.Current().Generation != 1 {
		t.Fatal("a rejected reload published a snapshot")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(baseConfig))
	f.Add([]byte(baseConfig + "policy: weighted\nprobe:\n  interval: 1s\n"))
	f.Add([]byte("vips: &a [1]\npools: *a\n"))
	f.Add([]byte("{}"))
	f.Add(aliasBomb(40))
	f.Add([]byte(baseConfig + "a: 1\nb: 2\nc: [&x {d: 1}, *x, *x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "fuzz.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatal("config and error")
			}
			// At most maxConfigErrors problems and the "and N more" line.
			if es, ok := err.(ConfigErrors); ok && len(es) > maxConfigErrors+1 {
				t.Fatalf("%d errors listed", len(es))
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a ConfigError", err)
			}
			return
		}
		// A config that validates builds a table.
		if cfg.NodeCount() == 0 || len(cfg.VIPs) == 0 || !isPrime(uint64(cfg.TableSize)) {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
	})
}
