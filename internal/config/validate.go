package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/omnigate/omnigate/internal/resilience"
)

// ProfileExists, when set, reports whether a simulator profile name (or
// file) exists. The simulator package owns profiles, so the application
// wires this at start-up; nil means Validate does not check profiles.
var ProfileExists func(profile string) bool

// ReservedModelName is the model name clients send to let the router choose;
// no model or alias may take it.
const ReservedModelName = "auto"

// Problem is one thing wrong with a configuration.
type Problem struct {
	Path    string // where, as in models[1].deployments[0].url
	Message string
}

// String returns "PATH: MESSAGE".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError is a configuration that failed Validate, with every problem.
type ValidationError struct {
	Source   string // the file name, or a description of where the config came from
	Problems []Problem
}

// Error lists every problem, one a line after the first.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%s): ", e.Source)
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

var (
	inputModalities  = []string{"text", "image", "audio", "video"}
	outputModalities = []string{"text", "audio"}
	endpoints        = []string{EndpointChat, EndpointCompletions, EndpointEmbeddings}
	dialects         = []string{DialectOpenAI, DialectVLLM, DialectVLLMLegacy, DialectSGLang,
		DialectOllama, DialectLlamaCpp, DialectModelStudio}
)

// validator collects problems.
type validator struct{ problems []Problem }

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate reports every problem in the configuration, in file order, or
// nil. Call it after ApplyDefaults. It does not read the environment or
// the certificate files (see Warnings and FileProblems for those); it
// consults ProfileExists when set.
func (c *Config) Validate() []Problem {
	v := &validator{}
	v.server(&c.Server)
	if len(c.Models) == 0 {
		v.add("models", "at least one model is required")
	}
	owners := map[string]string{} // public name or alias → what uses it
	for i := range c.Models {
		v.model(fmt.Sprintf("models[%d]", i), &c.Models[i], owners)
	}
	v.fallbacks(c)
	v.auto(c, owners)
	names := map[string]bool{ReservedModelName: true}
	for n := range owners {
		names[n] = true
	}
	v.auth(c, names)
	v.observability(c)
	byName := map[string]*Model{}
	for i := range c.Models {
		byName[c.Models[i].Name] = &c.Models[i]
	}
	withAliases := map[string]*Model{}
	for i := range c.Models {
		m := &c.Models[i]
		withAliases[m.Name] = m
		for _, a := range m.Aliases {
			withAliases[a] = m
		}
	}
	for i := range c.Models {
		v.cache(fmt.Sprintf("models[%d].cache", i), &c.Models[i].Cache, &c.Cache, byName)
		v.shadow(fmt.Sprintf("models[%d].shadow", i), &c.Models[i], withAliases)
	}
	v.cacheStores(&c.Cache)
	v.grpc(&c.Server)
	v.jobs(&c.Jobs)
	return v.problems
}

func (v *validator) server(s *Server) {
	if host, port, err := net.SplitHostPort(s.Addr); err != nil {
		v.add("server.addr", "%q is not host:port (%v)", s.Addr, unwrapAddrErr(err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add("server.addr", "port %q in %q is not a number from 0 to 65535", port, s.Addr)
	} else if strings.ContainsAny(host, " \t/") {
		v.add("server.addr", "host %q in %q is not a host name or IP address", host, s.Addr)
	}
	if s.MaxBodyBytes <= 0 {
		v.add("server.max_body_bytes", "must be > 0, got %d", s.MaxBodyBytes)
	}
	v.nonNegative("server.shutdown_grace", s.ShutdownGrace)
	v.nonNegative("server.read_header_timeout", s.ReadHeaderTimeout)
	v.nonNegative("server.read_timeout", s.ReadTimeout)
	switch {
	case s.MaxBufferedBytes < 0:
		v.add("server.max_buffered_bytes", "must be > 0, got %d", s.MaxBufferedBytes)
	case s.MaxBodyBytes > 0 && s.MaxBufferedBytes < s.MaxBodyBytes:
		v.add("server.max_buffered_bytes", "%d is less than server.max_body_bytes (%d): a body of the largest size could never be read",
			s.MaxBufferedBytes, s.MaxBodyBytes)
	}
	if s.MaxConns < 0 {
		v.add("server.max_conns", "must be > 0, got %d", s.MaxConns)
	}
	if s.MaxConnsPerClient < 0 {
		v.add("server.max_conns_per_client", "must be > 0, got %d", s.MaxConnsPerClient)
	}
	v.listenerTLS("server.tls", s.TLS)
	v.listenerTLS("server.admin_tls", s.AdminTLS)
}

func unwrapAddrErr(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "must be >= 0, got %s", d)
	}
}

// name checks a public name, alias or deployment name.
func (v *validator) name(path, what, s string) bool {
	switch {
	case s == "":
		v.add(path, "%s is required", what)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		v.add(path, "%s %q contains white space or control characters", what, s)
	default:
		return true
	}
	return false
}

func (v *validator) model(p string, m *Model, owners map[string]string) {
	if r := m.Retry; r.Attempts < 1 || r.Backoff < 0 || r.MaxBackoff < r.Backoff || r.Budget < 0 || r.Budget > 1 || r.MinRetries < 0 {
		v.add(p+".retry", "attempts must be >= 1, 0 <= backoff <= max_backoff, budget in [0, 1], min_retries >= 0; got %+v", r)
	}
	if v.name(p+".name", "name", m.Name) {
		v.publicName(p+".name", m.Name, p, owners)
	}
	for j, a := range m.Aliases {
		ap := fmt.Sprintf("%s.aliases[%d]", p, j)
		if !v.name(ap, "alias", a) {
			continue
		}
		if a == m.Name {
			v.add(ap, "alias %q repeats the model's own name", a)
			continue
		}
		v.publicName(ap, a, p, owners)
	}
	if m.ContextWindow <= 0 {
		v.add(p+".context_window", "must be > 0, got %d", m.ContextWindow)
	}
	v.capabilities(p+".capabilities", m)
	v.limits(p+".limits", m)
	v.timeouts(p+".timeouts", m.Timeouts)
	v.nonNegative(p+".hedge.after", m.Hedge.After)
	if h := m.Hedge; h.Percentile < 0 || h.Percentile > 100 || (h.Percentile > 0 && h.After <= 0) {
		v.add(p+".hedge", "percentile must be in [1, 100] and needs after > 0 (the least wait); got %+v", h)
	}
	v.balance(p+".balance", &m.Balance)
	v.admission(p+".admission", &m.Admission)
	v.batching(p+".batching", &m.Batching)
	if len(m.Deployments) == 0 {
		v.add(p+".deployments", "at least one deployment is required")
	}
	seen := map[string]int{}
	for j := range m.Deployments {
		dp := fmt.Sprintf("%s.deployments[%d]", p, j)
		d := &m.Deployments[j]
		if v.name(dp+".name", "name", d.Name) {
			if k, dup := seen[d.Name]; dup {
				v.add(dp+".name", "deployment name %q is already used by %s.deployments[%d]", d.Name, p, k)
			} else {
				seen[d.Name] = j
			}
		}
		v.deployment(dp, d)
	}
}

// publicName checks that a name or alias is not reserved and not taken.
// owner is the model's path; owners maps each name seen to its user.
func (v *validator) publicName(path, s, owner string, owners map[string]string) {
	if s == ReservedModelName {
		v.add(path, "%q is reserved: clients send model %q to let the gateway choose", s, s)
		return
	}
	if prev, dup := owners[s]; dup {
		v.add(path, "%q is already used as %s", s, prev)
		return
	}
	if strings.HasSuffix(path, ".name") {
		owners[s] = "the name of " + owner
	} else {
		owners[s] = "an alias of " + owner
	}
}

func (v *validator) capabilities(p string, m *Model) {
	c := &m.Capabilities
	v.words(p+".input", "input modality", c.Input, inputModalities)
	v.words(p+".output", "output modality", c.Output, outputModalities)
	if !slices.Contains(c.Output, "text") {
		v.add(p+".output", "must include text (every model answers in text)")
	}
	if slices.Contains(c.Output, "audio") && !slices.ContainsFunc(m.Deployments, func(d Deployment) bool { return d.AudioOutput }) {
		v.add(p+".output", "includes audio but no deployment sets audio_output: true")
	}
	v.words(p+".endpoints", "endpoint", c.Endpoints, endpoints)
}

// words checks that list is non-empty, uses only allowed words, and has no repeats.
func (v *validator) words(p, what string, list, allowed []string) {
	if len(list) == 0 {
		v.add(p, "must list at least one %s (%s)", what, strings.Join(allowed, ", "))
	}
	for j, w := range list {
		switch {
		case !slices.Contains(allowed, w):
			v.add(fmt.Sprintf("%s[%d]", p, j), "unknown %s %q (want one of %s)", what, w, strings.Join(allowed, ", "))
		case slices.Index(list, w) < j:
			v.add(fmt.Sprintf("%s[%d]", p, j), "%q is listed twice", w)
		}
	}
}

func (v *validator) limits(p string, m *Model) {
	l := &m.Limits
	switch {
	case l.MaxTokens < 0:
		v.add(p+".max_tokens", "must be >= 0 (0: only the context window limits it), got %d", l.MaxTokens)
	case m.ContextWindow > 0 && l.MaxTokens > m.ContextWindow:
		v.add(p+".max_tokens", "%d exceeds the model's context_window %d", l.MaxTokens, m.ContextWindow)
	}
	v.rangeLimit(p+".temperature", l.Temperature, 0, math.Inf(1))
	v.rangeLimit(p+".top_p", l.TopP, 0, 1)
	if l.MaxN < 0 {
		v.add(p+".max_n", "must be >= 1, got %d", l.MaxN)
	}
	for _, kv := range []struct {
		key string
		n   *int
	}{{"image", l.Media.Image}, {"audio", l.Media.Audio}, {"video", l.Media.Video}} {
		if kv.n != nil && *kv.n < 0 {
			v.add(p+".media."+kv.key, "must be >= 0 (0 refuses the kind; leave it out for no limit), got %d", *kv.n)
		}
	}
	switch l.OnViolation {
	case "", OnViolationReject, OnViolationClamp:
	default:
		v.add(p+".on_violation", "unknown policy %q (want reject or clamp)", l.OnViolation)
	}
}

// rangeLimit checks r is a finite interval inside [lo, hi].
func (v *validator) rangeLimit(p string, r *Range, lo, hi float64) {
	switch {
	case r == nil:
	case math.IsNaN(r.Min) || math.IsNaN(r.Max) || math.IsInf(r.Min, 0) || math.IsInf(r.Max, 0):
		v.add(p, "range %s must be finite", r)
	case r.Min > r.Max:
		v.add(p, "min %s is greater than max %s", formatFloat(r.Min), formatFloat(r.Max))
	case r.Min < lo || r.Max > hi:
		if math.IsInf(hi, 1) {
			v.add(p, "range %s must not go below %s", r, formatFloat(lo))
		} else {
			v.add(p, "range %s must lie within %s", r, Range{Min: lo, Max: hi})
		}
	}
}

func (v *validator) deployment(p string, d *Deployment) {
	switch d.Kind {
	case KindSim:
		v.simDeployment(p, d)
	case KindOpenAI:
		v.openAIDeployment(p, d)
	case "":
		v.add(p+".kind", "kind is required: sim or openai")
	default:
		v.add(p+".kind", "unknown kind %q (want sim or openai)", d.Kind)
	}
	if d.Weight < 1 {
		v.add(p+".weight", "must be >= 1, got %d", d.Weight)
	}
	if h := d.Hardware; h.Count < 0 || h.Count > 0 && h.GPU == "" {
		v.add(p+".hardware", "count must be >= 0, and needs gpu (H100-80GB, A100-80GB, L4…)")
	}
	if q := d.Quantization; q != "" && !isLabel(q) {
		v.add(p+".quantization", "%q is not a label: lowercase letters, digits and '-', at most 32 (bf16, fp8, awq-int4…)", q)
	}
	v.timeouts(p+".timeouts", d.Timeouts)
	if d.MaxNumSeqs < 0 {
		v.add(p+".max_num_seqs", "must be >= 0, got %d", d.MaxNumSeqs)
	}
	v.engineMetrics(p+".metrics", &d.Metrics)
	v.gpuMetrics(p+".gpu_metrics", &d.GPUMetrics)
}

func (v *validator) timeouts(p string, t Timeouts) {
	v.nonNegative(p+".connect", t.Connect)
	v.nonNegative(p+".first_token", t.FirstToken)
	v.nonNegative(p+".idle", t.Idle)
	v.nonNegative(p+".total", t.Total)
}

func (v *validator) simDeployment(p string, d *Deployment) {
	if d.Profile == "" {
		v.add(p+".profile", "kind sim needs a profile")
	} else if ProfileExists != nil && !ProfileExists(d.Profile) {
		v.add(p+".profile", "unknown simulator profile %q", d.Profile)
	}
	for _, f := range []struct {
		key string
		set bool
	}{
		{"url", d.URL != ""},
		{"upstream_model", d.UpstreamModel != ""},
		{"api_key_env", d.APIKeyEnv != ""},
		{"headers", len(d.Headers) > 0},
		{"dialect", d.Dialect != ""},
		{"stream_only", d.StreamOnly},
		{"max_idle_conns", d.MaxIdleConns != 0},
		{"idle_conn_timeout", d.IdleConnTimeout != 0},
		{"health_check", d.HealthCheck != (HealthCheck{})},
		{"tls", d.TLS != (UpstreamTLS{})},
	} {
		if f.set {
			v.add(p+"."+f.key, "applies only to kind openai")
		}
	}
}

func (v *validator) openAIDeployment(p string, d *Deployment) {
	if d.Profile != "" {
		v.add(p+".profile", "applies only to kind sim")
	}
	v.upstreamURL(p+".url", d.URL)
	if !slices.Contains(dialects, d.Dialect) {
		v.add(p+".dialect", "unknown dialect %q (want one of %s)", d.Dialect, strings.Join(dialects, ", "))
	}
	if d.UpstreamModel == "" {
		v.add(p+".upstream_model", "is required")
	}
	if d.APIKeyEnv != "" && !isEnvName(d.APIKeyEnv) {
		v.add(p+".api_key_env", "%q is not an environment variable name (letters, digits, _; not starting with a digit)", d.APIKeyEnv)
	}
	for _, k := range sortedKeys(d.Headers) {
		if !isToken(k) {
			v.add(p+".headers", "%q is not a valid header name", k)
		} else if strings.ContainsAny(d.Headers[k], "\r\n\x00") {
			v.add(p+".headers."+k, "value contains a line break or NUL")
		}
	}
	v.upstreamTLS(p+".tls", d)
	if d.MaxIdleConns < 0 {
		v.add(p+".max_idle_conns", "must be >= 0, got %d", d.MaxIdleConns)
	}
	v.nonNegative(p+".idle_conn_timeout", d.IdleConnTimeout)
	if h := d.HealthCheck; h.On() {
		hp := p + ".health_check"
		if h.Interval <= 0 {
			v.add(hp+".interval", "must be > 0, got %s", h.Interval)
		}
		if h.Timeout <= 0 || h.Timeout > h.Interval {
			v.add(hp+".timeout", "must be > 0 and at most the interval (%s), got %s", h.Interval, h.Timeout)
		}
		if h.Failures < 1 {
			v.add(hp+".failures", "must be >= 1, got %d", h.Failures)
		}
		if h.Successes < 1 {
			v.add(hp+".successes", "must be >= 1, got %d", h.Successes)
		}
		if h.Path == "" || strings.ContainsAny(h.Path, " ?#") || strings.Contains(h.Path, "://") {
			v.add(hp+".path", "%q is not a path (/health at the engine's root, or models below the base URL)", h.Path)
		}
	}
}

func (v *validator) upstreamURL(p, raw string) {
	if raw == "" {
		v.add(p, "kind openai needs a url, such as http://10.0.0.5:8000/v1")
		return
	}
	if strings.Contains(raw, "${") {
		v.add(p, "%q: environment variables are not expanded in the config; write the URL out", raw)
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(p, "%q is not an absolute http:// or https:// URL: %v", raw, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(p, "%q must be an absolute http:// or https:// URL", raw)
	case u.Host == "":
		v.add(p, "%q has no host", raw)
	case u.RawQuery != "" || u.Fragment != "":
		v.add(p, "%q must not carry a query or fragment", raw)
	case u.User != nil:
		v.add(p, "%q must not carry credentials; use api_key_env", raw)
	}
}

// fallbacks checks routing.fallbacks: names exist, no self or repeated
// targets, known error classes. A chain is the model's own list, never
// its fallbacks' lists too, so a ↔ b is no loop: a small tier may fall
// back to the large one for a long prompt, and the large one to the
// small one when it is down.
func (v *validator) fallbacks(c *Config) {
	models := map[string]bool{}
	aliasOf := map[string]string{}
	for _, m := range c.Models {
		models[m.Name] = true
		for _, a := range m.Aliases {
			aliasOf[a] = m.Name
		}
	}
	known := func(p, name string) bool {
		switch {
		case models[name]:
			return true
		case aliasOf[name] != "":
			v.add(p, "%q is an alias of %s; fallbacks name models by their name", name, aliasOf[name])
		default:
			v.add(p, "unknown model %q", name)
		}
		return false
	}
	for _, k := range sortedKeys(c.Routing.Fallbacks) {
		kp := "routing.fallbacks." + k
		known(kp, k)
		list := c.Routing.Fallbacks[k]
		for j, f := range list {
			tp := fmt.Sprintf("%s[%d]", kp, j)
			switch {
			case f.Model == k:
				v.add(tp, "a model cannot fall back to itself")
			case slices.IndexFunc(list, func(o Fallback) bool { return o.Model == f.Model }) < j:
				v.add(tp, "%q is listed twice", f.Model)
			default:
				known(tp, f.Model)
			}
			for n, class := range f.On {
				if !slices.Contains(resilience.ClassNames(), class) {
					v.add(fmt.Sprintf("%s.on[%d]", tp, n), "unknown error class %q (want one of %s)", class, strings.Join(resilience.ClassNames(), ", "))
				}
			}
		}
	}
}

// Warnings reports what depends on the environment and is not an error in
// the file: api_key_env variables, tracing's headers_env when tracing is
// on, and the key store's dsn_env, that are unset or empty in getenv, and
// certificate files that do not exist or load (FileProblems). A missing
// key is a warning, not a Problem, so a file validates the same on a
// laptop and in CI without the production secrets. A deployment that
// skips verifying its engine's certificate is warned about too.
func (c *Config) Warnings(getenv func(string) string) []Problem {
	var ws []Problem
	for i, m := range c.Models {
		for j, d := range m.Deployments {
			if d.Kind == KindOpenAI && d.APIKeyEnv != "" && getenv(d.APIKeyEnv) == "" {
				ws = append(ws, Problem{
					Path:    fmt.Sprintf("models[%d].deployments[%d].api_key_env", i, j),
					Message: fmt.Sprintf("environment variable %s is unset or empty; serve needs it set", d.APIKeyEnv),
				})
			}
			if d.Kind == KindOpenAI && d.TLS.InsecureSkipVerify {
				ws = append(ws, Problem{
					Path:    fmt.Sprintf("models[%d].deployments[%d].tls.insecure_skip_verify", i, j),
					Message: InsecureWarning,
				})
			}
		}
	}
	ws = append(ws, c.FileProblems()...)
	if t := c.Tracing; t.Enabled && t.HeadersEnv != "" && getenv(t.HeadersEnv) == "" {
		ws = append(ws, Problem{Path: "tracing.headers_env",
			Message: fmt.Sprintf("environment variable %s is unset or empty; serve needs it set", t.HeadersEnv)})
	}
	if s := c.Auth.Store; s.Kind == KeyStorePostgres && s.Postgres.DSNEnv != "" && getenv(s.Postgres.DSNEnv) == "" {
		ws = append(ws, Problem{Path: "auth.store.postgres.dsn_env",
			Message: fmt.Sprintf("environment variable %s is unset or empty; serve needs it set", s.Postgres.DSNEnv)})
	}
	return ws
}

// isLabel reports whether s is a short lowercase label.
func isLabel(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func isEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// isToken reports whether s is an HTTP token (RFC 9110), as header names must be.
func isToken(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII || !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return s != ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
