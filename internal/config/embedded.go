package config

import (
	_ "embed"
	"fmt"
)

// defaultYAML is the configuration used when no file is given.
//
//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the built-in configuration, for
// `omnigate` subcommands that print it as a starting point.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns a fresh copy of the built-in configuration, both tiers on
// the simulator, with ApplyDefaults already applied. It panics if the
// embedded file does not parse, which a test rules out.
func Default() *Config {
	cfg, err := Parse(defaultYAML, "default.yaml")
	if err != nil {
		panic(fmt.Sprintf("config: embedded default.yaml: %v", err))
	}
	cfg.ApplyDefaults()
	return cfg
}
