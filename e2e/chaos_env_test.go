package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
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
type replica struct {
	name string // the deployment's name in the gateway config
	addr string
	args []string // omnigate's arguments: sim and its flags
	p    *proc    // nil while it is down
}

// newReplica starts a simulator serving model as deployment name, with
// the fault flags faults.
func newReplica(t *testing.T, name, model string, faults []string) *replica {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"sim", "--profile", "qwen3-omni-7b", "--model", model, "--addr", addr, "--seed", "1"}, faults...)
	r := &replica{name: name, addr: addr, args: args}
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

// deploymentYAML is the replica's entry in the gateway's deployments.
func (r *replica) deploymentYAML() string {
	return fmt.Sprintf(`{name: %s, kind: openai, url: "http://%s/v1", dialect: vllm, idle_conn_timeout: 1s, health_check: %s}`,
		r.name, r.addr, chaosHealthCheck)
}

// chaosConfig is the gateway's config: one model per scenario, each with
// its own replicas, so that one gateway process serves the whole suite
// and its goroutines and memory can be compared before and after.
func chaosConfig(t *testing.T, models []chaosModel) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("server: {addr: \"127.0.0.1:0\"}\nmodels:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "  - name: %s\n    tier: small\n", m.name)
		if m.timeouts != "" {
			fmt.Fprintf(&b, "    timeouts: %s\n", m.timeouts)
		}
		b.WriteString("    deployments:\n")
		for _, r := range m.replicas {
			fmt.Fprintf(&b, "      - %s\n", r.deploymentYAML())
		}
	}
	return writeConfig(t, b.String())
}

// chaosModel is one scenario's model in the gateway config.
type chaosModel struct {
	name     string
	timeouts string // YAML flow map; "" for the small tier's
	replicas []*replica
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
