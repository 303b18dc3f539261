package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"
)

var (
	dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "omnigate.json")
	alertsFile    = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml")
)

// dashboardExprs returns the PromQL of every panel target and the metrics
// the template variables query (label_values(metric, label)).
func dashboardExprs(t *testing.T) (exprs, varMetrics []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)
	for _, v := range d.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			varMetrics = append(varMetrics, m[1])
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: %d panel expressions; the file did not parse as a dashboard", dashboardFile, len(exprs))
	}
	return exprs, varMetrics
}

// alertExprs returns the expression of every rule in the alerts file.
func alertExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression reads: its
// identifiers that are not functions, keywords, or labels (in matchers and
// grouping clauses).
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, ix := range promIdent.FindAllStringIndex(e, -1) {
		if i := ix[0]; i > 0 && strings.ContainsRune("0123456789.$", rune(e[i-1])) {
			continue // a number's exponent (1e3), a Grafana variable
		}
		name := e[ix[0]:ix[1]]
		if strings.HasPrefix(strings.TrimLeft(e[ix[1]:], " \t\n"), "(") || slices.Contains(promKeywords, strings.ToLower(name)) {
			continue // a function or aggregation, or a keyword
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (model, le) (rate(model_latency_seconds_bucket{model_version=~"$model",x="a{b}"}[$__rate_interval])) / on (model) group_left omnigate_admission_limit > 1e3 and bool max(omnigate_x)`)
	if want := []string{"model_latency_seconds_bucket", "omnigate_admission_limit", "omnigate_x"}; !slices.Equal(want, got) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// exported is the set of names a query may use against a scrape: each
// family's, and a histogram's _bucket, _count and _sum series.
func exported(mfs map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, mf := range mfs {
		out[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				out[name+s] = true
			}
		}
	}
	return out
}

// TestDeployFilesUseExportedMetrics: every metric the Grafana dashboard and
// the alert rules read is in a real scrape of a gateway that served
// traffic, and Prometheus's promtool accepts the rules (and the
// dashboard's queries, written as recording rules).
func TestDeployFilesUseExportedMetrics(t *testing.T) {
	exprs, vars := dashboardExprs(t)
	alerts := alertExprs(t)
	if len(alerts) < 6 {
		t.Fatalf("%s: %d rules", alertsFile, len(alerts))
	}
	gw, _, _ := richGateway(t)
	have := exported(families(t, gw))
	check := func(file string, names []string) {
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s reads %s, which the gateway does not export", file, n)
			}
		}
	}
	check(dashboardFile, vars)
	for _, e := range exprs {
		check(dashboardFile, metricNames(e))
	}
	for _, e := range alerts {
		check(alertsFile, metricNames(e))
	}
	var used []string
	for _, e := range append(exprs, alerts...) {
		used = append(used, metricNames(e)...)
	}
	for _, must := range []string{"model_latency_seconds_bucket", "omnigate_requests_total", "omnigate_breaker_state",
		"omnigate_deployment_healthy", "omnigate_engine_kv_cache_usage_ratio", "omnigate_gpu_memory_used_bytes"} {
		if !slices.Contains(used, must) {
			t.Errorf("neither the dashboard nor the alerts read %s", must)
		}
	}

	tool := promtool(t)
	runPromtool(t, tool, "check", "rules", alertsFile)
	// The dashboard's queries as recording rules, Grafana's variables
	// given values, so promtool parses them too.
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$model", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(grafanaVars.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, tool, "check", "rules", f)
}

// runPromtool runs promtool with args and fails the test on any
// complaint.
func runPromtool(t *testing.T, tool string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(tool, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}
