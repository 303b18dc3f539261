package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment variables read by FromEnvAndFile.
const (
	// EnvConfig names the config file when no path is given.
	EnvConfig = "OMNIGATE_CONFIG"
	// EnvAddr overrides server.addr.
	EnvAddr = "OMNIGATE_ADDR"
	// EnvAdminAddr overrides server.admin_addr.
	EnvAdminAddr = "OMNIGATE_ADMIN_ADDR"
	// EnvGRPCAddr overrides server.grpc_addr.
	EnvGRPCAddr = "OMNIGATE_GRPC_ADDR"
)

// DecodeError is a file that could not be decoded into a Config. Each entry
// of Errors reads "file:line: message" (or "file: message" when the YAML
// library gives no line); all of them are reported, not only the first.
type DecodeError struct {
	File   string
	Errors []string
	Err    error // the YAML library's error
}

// Error returns the entries, one a line.
func (e *DecodeError) Error() string { return strings.Join(e.Errors, "\n") }

// Unwrap returns the YAML library's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Load reads and decodes the file at path. It neither applies defaults nor
// validates; FromEnvAndFile does both.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes one YAML document into a Config; name labels errors. Unknown
// keys are errors. An empty document gives an empty Config (which Validate
// then rejects for having no models). Environment variables are not
// expanded: see docs/configuration.md.
func Parse(data []byte, name string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	cfg := new(Config)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		return nil, decodeError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, decodeError(name, err)
	default:
		return nil, &DecodeError{File: name, Errors: []string{
			fmt.Sprintf("%s:%d: a config file holds one YAML document; found a second", name, extra.Line),
		}}
	}
	return cfg, nil
}

var (
	lineRE         = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`^field (.+) not found in type config\.(\w+)$`)
)

// decodeError rewrites the YAML library's "line N: msg" entries as "name:N: msg".
func decodeError(name string, err error) error {
	var raw []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		raw = te.Errors
	} else {
		raw = []string{err.Error()}
	}
	out := &DecodeError{File: name, Err: err}
	for _, r := range raw {
		m := lineRE.FindStringSubmatch(r)
		if m == nil {
			out.Errors = append(out.Errors, name+": "+strings.TrimPrefix(r, "yaml: "))
			continue
		}
		msg := m[2]
		if f := unknownFieldRE.FindStringSubmatch(msg); f != nil {
			msg = fmt.Sprintf("unknown key %q in %s", f[1], typeNames[f[2]])
		}
		out.Errors = append(out.Errors, name+":"+m[1]+": "+msg)
	}
	return out
}

// typeNames maps a Go type to where it sits in the file, for unknown-key errors.
var typeNames = map[string]string{
	"Config":       "the top level",
	"Server":       "server",
	"Model":        "a model",
	"Capabilities": "capabilities",
	"Limits":       "limits",
	"MediaLimit":   "limits.media",
	"Deployment":   "a deployment",
	"Timeouts":     "timeouts",
	"Routing":      "routing",
	"Logging":      "logging",
	"Tracing":      "tracing",
	"Cache":        "a model's cache",
	"CacheStores":  "cache",
	"ListenerTLS":  "a listener's tls",
	"UpstreamTLS":  "a deployment's tls",
}

// FromEnvAndFile builds the running configuration: the file at path, else
// the file named by OMNIGATE_CONFIG, else Default(); then OMNIGATE_ADDR over
// server.addr and OMNIGATE_ADMIN_ADDR over server.admin_addr; then
// defaults; then Validate, and FileProblems when it found none. Problems
// come back as a *ValidationError. getenv is os.Getenv when nil.
func FromEnvAndFile(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if path == "" {
		path = getenv(EnvConfig)
	}
	var cfg *Config
	source := path
	if path == "" {
		cfg, source = Default(), "built-in default config"
	} else {
		var err error
		if cfg, err = Load(path); err != nil {
			return nil, err
		}
	}
	addr := getenv(EnvAddr)
	if addr != "" {
		cfg.Server.Addr = addr
	}
	adminAddr := getenv(EnvAdminAddr)
	if adminAddr != "" {
		cfg.Server.AdminAddr = adminAddr
	}
	grpcAddr := getenv(EnvGRPCAddr)
	if grpcAddr != "" {
		cfg.Server.GRPCAddr = grpcAddr
	}
	cfg.ApplyDefaults()
	ps := cfg.Validate()
	if len(ps) == 0 {
		ps = cfg.FileProblems() // a file refused is a reason to refuse the config
	}
	if len(ps) > 0 {
		for i := range ps {
			if addr != "" && ps[i].Path == "server.addr" {
				ps[i].Message += " (set by " + EnvAddr + ")"
			}
			if adminAddr != "" && ps[i].Path == "server.admin_addr" {
				ps[i].Message += " (set by " + EnvAdminAddr + ")"
			}
			if grpcAddr != "" && ps[i].Path == "server.grpc_addr" {
				ps[i].Message += " (set by " + EnvGRPCAddr + ")"
			}
		}
		return nil, &ValidationError{Source: source, Problems: ps}
	}
	return cfg, nil
}
