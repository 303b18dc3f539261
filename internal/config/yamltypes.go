package config

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML reads a range written as a two-element sequence, [min, max].
func (r *Range) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
		return nodeError(n, "a range is written [min, max]")
	}
	var lo, hi float64
	if err := n.Content[0].Decode(&lo); err != nil {
		return err
	}
	if err := n.Content[1].Decode(&hi); err != nil {
		return err
	}
	r.Min, r.Max = lo, hi
	return nil
}

// MarshalYAML writes the range back as a flow sequence, [min, max].
func (r Range) MarshalYAML() (any, error) {
	return &yaml.Node{
		Kind:  yaml.SequenceNode,
		Style: yaml.FlowStyle,
		Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: formatFloat(r.Min)},
			{Kind: yaml.ScalarNode, Value: formatFloat(r.Max)},
		},
	}, nil
}

// String returns the range as it is written in YAML.
func (r Range) String() string { return "[" + formatFloat(r.Min) + ", " + formatFloat(r.Max) + "]" }

// Contains reports whether v lies in the closed interval.
func (r Range) Contains(v float64) bool { return v >= r.Min && v <= r.Max }

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// UnmarshalYAML reads a Go duration string such as "1.5s" or "10m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "a duration is written as a string such as \"30s\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			return nodeError(n, "duration %q needs a unit, such as \"%ss\"", n.Value, n.Value)
		}
		return nodeError(n, "invalid duration %q (want a value such as \"1.5s\" or \"10m\")", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string such as "1m30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String returns the duration as time.Duration formats it.
func (d Duration) String() string { return time.Duration(d).String() }

// nodeError reports a problem at n's line in the form the decoder collects,
// so decoding continues and every such problem is reported together.
func nodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

// UnmarshalYAML reads a fallback written as a model name, or as a
// mapping {model, on}.
func (f *Fallback) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*f = Fallback{Model: n.Value}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nodeError(n, "a fallback is a model name or {model: NAME, on: [CLASSES]}")
	}
	for i := 0; i+1 < len(n.Content); i += 2 { // Node.Decode does not check field names
		if k := n.Content[i].Value; k != "model" && k != "on" {
			return nodeError(n.Content[i], "field %s not found in a fallback (model, on)", k)
		}
	}
	type plain Fallback // no UnmarshalYAML: decoded field by field
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*f = Fallback(p)
	return nil
}

// MarshalYAML writes a fallback without classes as its model name.
func (f Fallback) MarshalYAML() (any, error) {
	if len(f.On) == 0 {
		return f.Model, nil
	}
	type plain Fallback
	return plain(f), nil
}
