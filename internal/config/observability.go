package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Logging is the process log and the access log.
type Logging struct {
	// Level is debug, info, warn or error; default info. --log-level
	// overrides it.
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value) or json; default text.
	Format string `yaml:"format"`
	// Access writes one line per request (request id, model, deployment,
	// status, tokens, latency, time to first token, retries, fallback,
	// cache). Default true.
	Access *bool `yaml:"access"`
	// Bodies adds the request body and the answer (each cut at 4 KiB) to
	// the access line. Default false: prompts and completions are never
	// logged unless this is set.
	Bodies bool `yaml:"bodies"`
}

// AccessOn reports whether the access log is on.
func (l Logging) AccessOn() bool { return l.Access == nil || *l.Access }

// Tracing is OpenTelemetry tracing, exported over OTLP/HTTP. Off by
// default; off, it costs nothing on the request path.
type Tracing struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP traces URL; default
	// http://127.0.0.1:4318/v1/traces, or what OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// / OTEL_EXPORTER_OTLP_ENDPOINT say.
	Endpoint string `yaml:"endpoint"`
	// HeadersEnv names an environment variable holding extra export
	// headers, "key=value,key2=value2" (an API key for a hosted backend).
	HeadersEnv string `yaml:"headers_env"`
	// SampleRatio is the share of root traces kept, 0 to 1; default 1.
	// A request with a sampled traceparent is always kept.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute; default omnigate.
	ServiceName string `yaml:"service_name"`
}

// Ratio is the sample ratio with its default.
func (t Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

// Defaults of the observability keys.
const (
	DefaultAdminAddr   = "127.0.0.1:8081"
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "text"
	DefaultServiceName = "omnigate"
	// AdminOff as server.admin_addr turns the admin listener off.
	AdminOff = "off"
)

func (c *Config) applyObservabilityDefaults() {
	setDefault(&c.Server.AdminAddr, DefaultAdminAddr)
	setDefault(&c.Logging.Level, DefaultLogLevel)
	setDefault(&c.Logging.Format, DefaultLogFormat)
	setDefault(&c.Tracing.ServiceName, DefaultServiceName)
}

func (v *validator) observability(c *Config) {
	if a := c.Server.AdminAddr; a != AdminOff {
		if _, port, err := net.SplitHostPort(a); err != nil {
			v.add("server.admin_addr", "%q is not host:port or %q (%v)", a, AdminOff, unwrapAddrErr(err))
		} else if a == c.Server.Addr && port != "0" {
			v.add("server.admin_addr", "%q is server.addr too: the admin API needs a listener of its own", a)
		}
	}
	if e := c.Server.AdminTokenEnv; e != "" && !isEnvName(e) {
		v.add("server.admin_token_env", "%q is not an environment variable name", e)
	}
	switch strings.ToLower(c.Logging.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.add("logging.level", "%q is not one of debug, info, warn, error", c.Logging.Level)
	}
	if c.Logging.Format != "text" && c.Logging.Format != "json" {
		v.add("logging.format", "%q is not text or json", c.Logging.Format)
	}
	t := c.Tracing
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("tracing.endpoint", "%q is not an http:// or https:// URL", t.Endpoint)
		}
	}
	if t.HeadersEnv != "" && !isEnvName(t.HeadersEnv) {
		v.add("tracing.headers_env", "%q is not an environment variable name", t.HeadersEnv)
	}
	if r := t.Ratio(); !(r >= 0 && r <= 1) {
		v.add("tracing.sample_ratio", "must be from 0 to 1, got %s", fmt.Sprint(r))
	}
}
