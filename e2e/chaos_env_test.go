package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chaosHealthCheck is every chaos deployment's active check: short, so a
// dead replica leaves rotation in a fraction of the 1 s target; two
// failures, so one probe slowed by a loaded machine does not take a
// healthy replica out.
const chaosHealthCheck = `{interval: 100ms, timeout: 100ms, failures: 2}`

// replica is one `omnigate sim` process behind the gateway, on an address
// of its own so that it can be killed and started again on the same one.
// It serves the profile's name, qwen3-omni-7b, which the gateway's
// deployments name as their upstream_model.
type replica struct {
	name    string // the deployment's name in the gateway config
	dialect string // its --error-dialect, and the deployment's dialect
	addr    string
	args    []string // omnigate's arguments: sim and its flags
	p       *proc    // nil while it is down
}

// newReplica starts a simulator known to the gateway as deployment name,
// with the fault flags faults. Every replica draws the same answer for the
// same request (the seed is the prompt's), so a stream continued on
// another one is the uncut answer byte for byte.
func newReplica(t *testing.T, name string, faults []string) *replica {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"sim", "--profile", "qwen3-omni-7b", "--addr", addr, "--seed", "1"}, faults...)
	r := &replica{name: name, dialect: "vllm", addr: addr, args: args}
	if i := slices.Index(faults, "--error-dialect"); i >= 0 {
		r.dialect = faults[i+1]
	}
	r.start(t)
	return r
}

// start runs the simulator (again), on its address.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.p = start(t, r.args...)
}

// kill ends the simulator with SIGKILL, as a crashed engine ends.
func (r *replica) kill() {
	r.p.cmd.Process.Kill()
	r.p.cmd.Wait()
	r.p = nil
}

// deploymentYAML is the replica's entry in a model's deployments, with
// the scenario's extra keys (a YAML flow map's entries; "" for none).
func (r *replica) deploymentYAML(extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf(`{name: %s, kind: openai, url: "http://%s/v1", upstream_model: qwen3-omni-7b, dialect: %s, idle_conn_timeout: 1s, health_check: %s%s}`,
		r.name, r.addr, r.dialect, chaosHealthCheck, extra)
}

// chaosConfig is the gateway's config: one model per scenario, each with
// its replicas, so that one gateway process serves the whole suite and
// its goroutines and memory can be compared before and after.
func chaosConfig(t *testing.T, models []chaosModel) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("server: {addr: \"127.0.0.1:0\"}\nmodels:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "  - name: %s\n    tier: small\n", m.name)
		if m.timeouts != "" {
			fmt.Fprintf(&b, "    timeouts: %s\n", m.timeouts)
		}
		if m.hedge != "" {
			fmt.Fprintf(&b, "    hedge: %s\n", m.hedge)
		}
		b.WriteString("    deployments:\n")
		for _, r := range m.replicas {
			fmt.Fprintf(&b, "      - %s\n", r.deploymentYAML(m.deployment))
		}
	}
	b.WriteString("routing:\n  fallbacks:\n")
	for _, m := range models {
		if m.fallback != "" {
			fmt.Fprintf(&b, "    %s: [%s]\n", m.name, m.fallback)
		}
	}
	return writeConfig(t, b.String())
}

// chaosModel is one scenario's model in the gateway config.
type chaosModel struct {
	name       string
	timeouts   string // YAML flow map; "" for the small tier's
	hedge      string // YAML flow map; "" for none
	deployment string // extra keys of each deployment
	fallback   string // its fallbacks' entry (YAML flow map); "" for none
	replicas   []*replica
}

// sample is one series of a Prometheus scrape.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of a Prometheus endpoint.
type metrics []sample

// scrapeMetrics reads the gateway's /metrics.
func scrapeMetrics(t *testing.T, base string) metrics {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := parseMetrics(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// parseMetrics reads the samples of the Prometheus text format. Label
// values are taken as written: the gateway's hold no quotes or commas.
func parseMetrics(r io.Reader) (metrics, error) {
	var m metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		s := sample{value: v, labels: map[string]string{}}
		name, labels, _ := strings.Cut(line[:i], "{")
		s.name = name
		for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.labels[k] = strings.Trim(v, `"`)
			}
		}
		m = append(m, s)
	}
	return m, sc.Err()
}

// sum adds up the series of name whose labels include want.
func (m metrics) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range m {
		if s.name == name && hasLabels(s.labels, want) {
			total += s.value
		}
	}
	return total
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// upstream is how many attempts the gateway sent to model's deployment
// with outcome; "" for either is any.
func (m metrics) upstream(model, deployment, outcome string) int {
	want := map[string]string{"model": model}
	if deployment != "" {
		want["deployment"] = deployment
	}
	if outcome != "" {
		want["outcome"] = outcome
	}
	return int(m.sum("omnigate_upstream_requests_total", want))
}

// retries is how many attempts of model the gateway sent again.
func (m metrics) retries(model string) int {
	return int(m.sum("omnigate_retries_total", map[string]string{"model": model}))
}

// poll calls cond every 10 ms until it holds, for at most limit; it
// returns how long that took and whether it held.
func poll(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), true
}

// outOfRotation reports whether the gateway sends a deployment no request
// now: its health check took it out, or its breaker is open.
func outOfRotation(r deploymentRow) bool {
	return r.Health == "down" || r.Breaker.State == "open"
}

// deploymentRows reads GET /admin/deployments: every model's deployments
// (the suite's healthy replicas appear once per model).
func deploymentRows(t *testing.T, base string) []deploymentRow {
	t.Helper()
	resp, err := http.Get(base + "/admin/deployments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct{ Data []deploymentRow }
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("/admin/deployments: %d %s", resp.StatusCode, b)
	}
	return out.Data
}

// row is r's state as a deployment of the scenario's model.
func (s *scenarioRun) row(t *testing.T, r *replica) deploymentRow {
	t.Helper()
	for _, d := range deploymentRows(t, s.admin) {
		if d.Model == s.model && d.Deployment == r.name {
			return d
		}
	}
	t.Fatalf("%s is not a deployment of %s", r.name, s.model)
	return deploymentRow{}
}
