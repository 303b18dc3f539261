// Package enginemetrics scrapes the engines' own Prometheus metrics (vLLM,
// SGLang, llama.cpp with --metrics, the simulator) into each deployment's
// balance.State: one goroutine per deployment GETs the engine's /metrics on
// an interval and stores what it says, so the balancer sees load that does
// not pass through this gateway (other gateways, direct clients).
//
// A deployment may also name the DCGM exporter of its GPUs (dcgm.go):
// its framebuffer, utilization and NVLink gauges are scraped the same way
// into a GPUStore, for the gateway's /metrics to pass on; nothing
// balances on them.
package enginemetrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/omnigate/omnigate/internal/balance"
)

// MaxBody is the most of a /metrics answer that is read: a few hundred
// KiB is a large vLLM answer; past this the body is refused, not parsed in
// part (a cut could fall in the middle of the series that matter).
const MaxBody = 4 << 20

// ErrNoMetrics is a /metrics answer that holds none of the series known
// here: the path is not an engine's metrics, or the engine is not one of
// those supported.
var ErrNoMetrics = errors.New("no engine metrics found")

// field is what a series fills in balance.EngineMetrics.
type field int

const (
	running field = iota
	waiting
	kvUsage
	kvUsageLegacy // used only when kvUsage is absent
	prefixQueries
	prefixHits
	prefixQueriesLegacy
	prefixHitsLegacy
	hitRate
	preemptions
	nFields
)

// series maps the engines' metric names (case-sensitive, as exported)
// onto the fields they fill.
var series = map[string]field{
	// vLLM V1 (≥ 0.10) and the simulator.
	"vllm:num_requests_running":       running,
	"vllm:num_requests_waiting":       waiting,
	"vllm:kv_cache_usage_perc":        kvUsage,
	"vllm:gpu_cache_usage_perc":       kvUsageLegacy,
	"vllm:prefix_cache_queries_total": prefixQueries,
	"vllm:prefix_cache_hits_total":    prefixHits,
	// vLLM before the prefix counters lost their gpu_ prefix.
	"vllm:gpu_prefix_cache_queries_total": prefixQueriesLegacy,
	"vllm:gpu_prefix_cache_hits_total":    prefixHitsLegacy,
	// Requests preempted for KV-cache room (vLLM V0 and V1 alike).
	"vllm:num_preemptions_total": preemptions,
	// SGLang.
	"sglang:num_running_reqs": running,
	"sglang:num_queue_reqs":   waiting,
	"sglang:token_usage":      kvUsage,
	"sglang:cache_hit_rate":   hitRate,
	// SGLang's preemption: requests retracted from a running batch when
	// the KV cache runs out (a counter; sglang:num_retracted_reqs is
	// the last batch's gauge).
	"sglang:num_retracted_requests_total": preemptions,
	// llama.cpp server with --metrics.
	"llamacpp:requests_processing":  running,
	"llamacpp:requests_deferred":    waiting,
	"llamacpp:kv_cache_usage_ratio": kvUsage,
}

// acc is one field's values over the series' label sets.
type acc struct {
	sum, max float64
	n        int
}

func (a *acc) add(v float64) {
	if a.n == 0 || v > a.max {
		a.max = v
	}
	a.sum += v
	a.n++
}

// Parse reads an engine's /metrics answer (Prometheus text exposition
// format), at most MaxBody bytes of it, into the metrics it says; at is
// the time they are stamped with.
func Parse(r io.Reader, at time.Time) (balance.EngineMetrics, error) {
	b, err := readBody(r)
	if err != nil {
		return balance.EngineMetrics{}, err
	}
	return ParseBytes(b, at)
}

// readBody reads r whole, refusing more than MaxBody bytes.
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("metrics answer is longer than %d bytes", MaxBody)
	}
	return b, nil
}

// ParseBytes is Parse on a body already read.
//
// A metric exported under several label sets is summed over them when it
// counts (requests, cached tokens, preemptions): vLLM with data parallelism exports one
// series per engine="N", and the deployment runs their total. A ratio
// that says how full the KV cache is takes the largest: a request lands on
// one engine, and the fullest is the one that preempts first, so the
// balancer would rather overestimate than learn from preemptions. A hit
// rate takes the mean: it describes the traffic, not a limit.
//
// Comment lines, unknown series (histograms' _bucket, _sum and _count
// among them) and malformed lines are skipped, and so are values that are
// not finite numbers (NaN, ±Inf): none of the series here has a meaning
// for them.
func ParseBytes(b []byte, at time.Time) (balance.EngineMetrics, error) {
	var f [nFields]acc
	eachSample(b, func(name, _ []byte, v float64) {
		if k, known := series[string(name)]; known && !math.IsNaN(v) && !math.IsInf(v, 0) {
			f[k].add(v)
		}
	})
	m := balance.EngineMetrics{At: at}
	found := false
	if a := f[running]; a.n > 0 {
		m.Running, found = count(a.sum), true
	}
	if a := f[waiting]; a.n > 0 {
		m.Waiting, found = count(a.sum), true
	}
	if a := pick(f[kvUsage], f[kvUsageLegacy]); a.n > 0 {
		m.KVUsage, m.HasKV, found = min(max(a.max, 0), 1), true, true
	}
	q, h := pick(f[prefixQueries], f[prefixQueriesLegacy]), pick(f[prefixHits], f[prefixHitsLegacy])
	if q.n > 0 && h.n > 0 {
		m.PrefixQueries, m.PrefixHits, m.HasPrefix, found = q.sum, h.sum, true, true
	}
	if a := f[hitRate]; a.n > 0 {
		m.PrefixHitRate, m.HasHitRate, found = min(max(a.sum/float64(a.n), 0), 1), true, true
	}
	if a := f[preemptions]; a.n > 0 {
		m.Preemptions, m.HasPreemptions = max(a.sum, 0), true // not found alone: a page of only this is no engine's
	}
	if !found {
		return balance.EngineMetrics{}, ErrNoMetrics
	}
	return m, nil
}

// count is a gauge of requests as an int (the engines export floats).
func count(v float64) int { return int(math.Round(max(v, 0))) }

// pick is the current name's values, else the legacy one's.
func pick(current, legacy acc) acc {
	if current.n > 0 {
		return current
	}
	return legacy
}

// parseSample splits one sample line, `name{labels} value [timestamp]`,
// into its name, its label set (braces included; nil when it has none)
// and value. Comments, blank lines and lines it cannot read report false.
// eachSample calls fn for every sample line of a text-format page.
func eachSample(b []byte, fn func(name, labels []byte, v float64)) {
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if name, labels, v, ok := parseSample(line); ok {
			fn(name, labels, v)
		}
	}
}

// fetch gets one metrics page with get, within timeout, and reads it
// (at most MaxBody bytes).
func fetch(ctx context.Context, get func(context.Context) (io.ReadCloser, error), timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := get(ctx)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return readBody(body)
}

func parseSample(line []byte) (name, labels []byte, v float64, ok bool) {
	line = trimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return nil, nil, 0, false
	}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	name, rest := line[:i], line[i:]
	if len(name) == 0 {
		return nil, nil, 0, false
	}
	if len(rest) > 0 && rest[0] == '{' {
		end := labelsEnd(rest)
		if end < 0 {
			return nil, nil, 0, false
		}
		labels, rest = rest[:end+1], rest[end+1:]
	}
	rest = trimSpace(rest)
	j := 0
	for j < len(rest) && rest[j] != ' ' && rest[j] != '\t' {
		j++
	}
	tok := rest[:j]
	if ts := trimSpace(rest[j:]); len(ts) > 0 { // a timestamp, in ms; nothing after it
		if _, err := strconv.ParseInt(string(ts), 10, 64); err != nil {
			return nil, nil, 0, false
		}
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return nil, nil, 0, false
	}
	return name, labels, v, true
}

// labelsEnd returns the index of the '}' closing the label set that s
// opens, honouring quoted values and their escapes (\" \\ \n), or -1.
func labelsEnd(s []byte) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // the escaped byte, whatever it is
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return i
		}
	}
	return -1
}

// trimSpace drops leading and trailing spaces and tabs (and a CRLF's CR).
func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r") }
