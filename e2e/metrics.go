package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anysched/anysched/internal/testbed"
)

// Metrics is one scrape of a Prometheus text endpoint: series (the name
// with its labels as printed, e.g. `anysched_packets_routed_total{route="syn"}`)
// to value.
type Metrics map[string]float64

// Value returns one series' value, 0 when it is absent.
func (m Metrics) Value(series string) float64 { return m[series] }

// ByLabel returns, for every series of metric name, the value keyed by
// the value of label (e.g. ByLabel("anysched_node_new_flows_total", "node")).
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range m {
		rest, ok := strings.CutPrefix(series, name+"{")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			k, val, ok := strings.Cut(kv, "=")
			if ok && k == label {
				out[strings.Trim(val, `"`)] += v
			}
		}
	}
	return out
}

// Sum adds every series of metric name (all label sets).
func (m Metrics) Sum(name string) float64 {
	total := 0.0
	for series, v := range m {
		if series == name || strings.HasPrefix(series, name+"{") {
			total += v
		}
	}
	return total
}

// parseMetrics reads the Prometheus text format (comments skipped).
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// hostHTTP is an HTTP client whose connections are made inside a bed
// namespace (to reach 127.0.0.1 of that namespace, or a bed address).
func hostHTTP(h *testbed.Host) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return h.Dial(ctx, network, addr) }},
	}
}

// httpGet fetches url from inside h's namespace; any status but 200 is an
// error.
func httpGet(h *testbed.Host, url string) ([]byte, error) {
	resp, err := hostHTTP(h).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// scrape reads url's metrics from inside h's namespace.
func scrape(h *testbed.Host, url string) (Metrics, error) {
	resp, err := hostHTTP(h).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// Diff returns the series whose value changed from before to m, as
// "series: before -> after" lines (for failure messages).
func (m Metrics) Diff(before Metrics) string {
	var lines []string
	for s, v := range m {
		if before[s] != v {
			lines = append(lines, fmt.Sprintf("%s: %v -> %v", s, before[s], v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
