package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/omnigate/omnigate/internal/jsonscan"
)

// schema is the part of JSON Schema the value generator reads: what tool
// parameters and response_format schemas use in practice (Pydantic's and
// zod's output included). Keywords it does not read (pattern, uniqueItems,
// multipleOf, not, if/then/else, additionalProperties) are ignored, so a
// schema that depends on them may get a value that misses them.
type schema struct {
	Type             schemaTypes        `json:"type"`
	Properties       schemaProps        `json:"properties"`
	Required         []string           `json:"required"`
	Items            *schema            `json:"items"`
	PrefixItems      []*schema          `json:"prefixItems"`
	Enum             []json.RawMessage  `json:"enum"`
	Const            json.RawMessage    `json:"const"`
	AnyOf            []*schema          `json:"anyOf"`
	OneOf            []*schema          `json:"oneOf"`
	AllOf            []*schema          `json:"allOf"`
	Ref              string             `json:"$ref"`
	Defs             map[string]*schema `json:"$defs"`
	Definitions      map[string]*schema `json:"definitions"`
	Minimum          *float64           `json:"minimum"`
	Maximum          *float64           `json:"maximum"`
	ExclusiveMinimum json.RawMessage    `json:"exclusiveMinimum"` // a number, or a bool in draft 4
	ExclusiveMaximum json.RawMessage    `json:"exclusiveMaximum"`
	MinLength        *int               `json:"minLength"`
	MaxLength        *int               `json:"maxLength"`
	MinItems         *int               `json:"minItems"`
	MaxItems         *int               `json:"maxItems"`
	Format           string             `json:"format"`
}

// UnmarshalJSON also accepts the boolean schemas true and false; both read
// as the empty schema (the generator never needs to produce "nothing").
func (s *schema) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true", "false", "null":
		*s = schema{}
		return nil
	}
	type plain schema
	return json.Unmarshal(b, (*plain)(s))
}

// schemaTypes is "type": one name or a list of names.
type schemaTypes []string

// UnmarshalJSON reads a string or an array of strings.
func (t *schemaTypes) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		*t = schemaTypes{s}
		return err
	}
	return json.Unmarshal(b, (*[]string)(t))
}

// schemaProp is one entry of "properties".
type schemaProp struct {
	name   string
	schema *schema
}

// schemaProps keeps "properties" in document order: a model writes the
// keys in the order the schema lists them, and so does the generator.
type schemaProps []schemaProp

// UnmarshalJSON reads an object of schemas, keeping its key order.
func (p *schemaProps) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('{') {
		return errors.New("properties must be an object")
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return err
		}
		s := new(schema)
		if err := d.Decode(s); err != nil {
			return err
		}
		*p = append(*p, schemaProp{name: k.(string), schema: s})
	}
	return nil
}

// parseSchema decodes a schema; an absent one is the empty schema.
func parseSchema(raw json.RawMessage) (*schema, error) {
	s := new(schema)
	if len(bytes.TrimSpace(raw)) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, err
	}
	return s, nil
}

// schemaDepth is how deep the generator fills optional members; below it,
// objects get their required properties only and arrays their minItems, so
// recursive schemas end.
const schemaDepth = 6

// valueGen writes deterministic JSON values that satisfy a schema.
type valueGen struct {
	rng  *rand.Rand
	root *schema
}

func newValueGen(seed uint64, root *schema) *valueGen {
	return &valueGen{rng: rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc909)), root: root}
}

// value appends a value for s, compact, in the schema's key order.
func (g *valueGen) value(b []byte, s *schema, depth int) []byte {
	if s == nil {
		s = &schema{}
	}
	if s.Ref != "" {
		if depth > 2*schemaDepth { // a recursion with no way out
			return append(b, "null"...)
		}
		return g.value(b, g.resolve(s.Ref), depth+1)
	}
	switch {
	case len(s.Const) > 0:
		return appendCompact(b, s.Const)
	case len(s.Enum) > 0:
		return appendCompact(b, s.Enum[g.rng.IntN(len(s.Enum))])
	case len(s.AllOf) > 0:
		return g.value(b, g.merge(s), depth)
	case len(s.AnyOf) > 0:
		return g.value(b, g.pick(s.AnyOf, depth), depth)
	case len(s.OneOf) > 0:
		return g.value(b, g.pick(s.OneOf, depth), depth)
	}
	switch s.typ() {
	case "object":
		return g.object(b, s, depth)
	case "array":
		return g.array(b, s, depth)
	case "integer":
		return strconv.AppendInt(b, g.integer(s), 10)
	case "number":
		return strconv.AppendFloat(b, g.number(s), 'f', -1, 64)
	case "boolean":
		return strconv.AppendBool(b, g.rng.IntN(2) == 0)
	case "null":
		return append(b, "null"...)
	}
	return jsonscan.AppendString(b, g.str(s))
}

// typ is the type to produce: the first non-null one listed (a nullable
// field gets a value, which is the more useful answer), else one inferred
// from the keywords present.
func (s *schema) typ() string {
	for _, t := range s.Type {
		if t != "null" {
			return t
		}
	}
	switch {
	case len(s.Type) > 0:
		return "null"
	case len(s.Properties) > 0 || len(s.Required) > 0:
		return "object"
	case s.Items != nil || len(s.PrefixItems) > 0 || s.MinItems != nil || s.MaxItems != nil:
		return "array"
	case s.Minimum != nil || s.Maximum != nil || len(s.ExclusiveMinimum) > 0 || len(s.ExclusiveMaximum) > 0:
		return "number"
	}
	return "string"
}

// resolve follows a local $ref: "#", "#/$defs/X" or "#/definitions/X".
// Anything else reads as the empty schema.
func (g *valueGen) resolve(ref string) *schema {
	if ref == "#" {
		return g.root
	}
	for _, p := range []struct {
		prefix string
		defs   map[string]*schema
	}{{"#/$defs/", g.root.Defs}, {"#/definitions/", g.root.Definitions}} {
		if name, ok := strings.CutPrefix(ref, p.prefix); ok {
			if s := p.defs[unescapePointer(name)]; s != nil {
				return s
			}
		}
	}
	return &schema{}
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// pick chooses one alternative of anyOf / oneOf; deep down it prefers one
// that ends the recursion (a scalar or null).
func (g *valueGen) pick(alts []*schema, depth int) *schema {
	if depth >= schemaDepth {
		for _, a := range alts {
			if a != nil && a.Ref == "" && a.typ() != "object" && a.typ() != "array" {
				return a
			}
		}
	}
	return alts[g.rng.IntN(len(alts))]
}

// merge folds allOf into one schema: the properties and required names of
// every part, the first type and bounds found.
func (g *valueGen) merge(s *schema) *schema {
	m := *s
	m.AllOf = nil
	for _, part := range s.AllOf {
		for part != nil && part.Ref != "" {
			part = g.resolve(part.Ref)
		}
		if part == nil {
			continue
		}
		if len(part.AllOf) > 0 {
			part = g.merge(part)
		}
		m.Properties = append(m.Properties[:len(m.Properties):len(m.Properties)], part.Properties...)
		m.Required = append(m.Required[:len(m.Required):len(m.Required)], part.Required...)
		if len(m.Type) == 0 {
			m.Type = part.Type
		}
		if len(m.Enum) == 0 {
			m.Enum = part.Enum
		}
		if m.Items == nil {
			m.Items = part.Items
		}
		if m.Minimum == nil {
			m.Minimum = part.Minimum
		}
		if m.Maximum == nil {
			m.Maximum = part.Maximum
		}
	}
	return &m
}

func (g *valueGen) object(b []byte, s *schema, depth int) []byte {
	b = append(b, '{')
	n := 0
	seen := make(map[string]bool, len(s.Properties))
	for _, p := range s.Properties {
		if seen[p.name] || depth >= schemaDepth && !contains(s.Required, p.name) {
			continue
		}
		seen[p.name] = true
		b = g.member(b, n, p.name, p.schema, depth)
		n++
	}
	for _, name := range s.Required { // required but never described
		if !seen[name] {
			seen[name] = true
			b = g.member(b, n, name, nil, depth)
			n++
		}
	}
	return append(b, '}')
}

func (g *valueGen) member(b []byte, n int, name string, s *schema, depth int) []byte {
	if n > 0 {
		b = append(b, ',')
	}
	b = jsonscan.AppendString(b, name)
	b = append(b, ':')
	return g.value(b, s, depth+1)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (g *valueGen) array(b []byte, s *schema, depth int) []byte {
	lo, hi := 0, math.MaxInt
	if s.MinItems != nil {
		lo = max(*s.MinItems, 0)
	}
	if s.MaxItems != nil {
		hi = max(*s.MaxItems, lo)
	}
	n := lo
	if depth < schemaDepth {
		n = min(max(lo, 1+g.rng.IntN(3)), hi)
	}
	n = max(n, min(len(s.PrefixItems), hi))
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		item := s.Items
		if i < len(s.PrefixItems) {
			item = s.PrefixItems[i]
		}
		b = g.value(b, item, depth+1)
	}
	return append(b, ']')
}

// bounds is a number's range: minimum / maximum, and whether each end is
// exclusive (draft 6+ numbers, or draft 4 booleans). An open side is 100
// away from the other; no bounds at all is [0, 100].
func (s *schema) bounds() (lo, hi float64, exLo, exHi bool) {
	lo, hi = math.NaN(), math.NaN()
	if s.Minimum != nil {
		lo = *s.Minimum
	}
	if s.Maximum != nil {
		hi = *s.Maximum
	}
	if f, ok := exclusiveBound(s.ExclusiveMinimum); ok {
		if math.IsNaN(f) || math.IsNaN(lo) || f >= lo {
			exLo = true
			if !math.IsNaN(f) {
				lo = f
			}
		}
	}
	if f, ok := exclusiveBound(s.ExclusiveMaximum); ok {
		if math.IsNaN(f) || math.IsNaN(hi) || f <= hi {
			exHi = true
			if !math.IsNaN(f) {
				hi = f
			}
		}
	}
	switch {
	case math.IsNaN(lo) && math.IsNaN(hi):
		lo, hi = 0, 100
	case math.IsNaN(lo):
		lo = hi - 100
	case math.IsNaN(hi):
		hi = lo + 100
	}
	return lo, hi, exLo, exHi
}

// exclusiveBound reads exclusiveMinimum / exclusiveMaximum: a number (its
// value), true (draft 4: minimum / maximum is exclusive; NaN), or absent.
func exclusiveBound(raw json.RawMessage) (float64, bool) {
	var f float64
	switch t := string(bytes.TrimSpace(raw)); {
	case t == "true":
		return math.NaN(), true
	case t != "" && json.Unmarshal(raw, &f) == nil:
		return f, true
	}
	return 0, false
}

func (g *valueGen) integer(s *schema) int64 {
	lo, hi, exLo, exHi := s.bounds()
	l, h := math.Ceil(lo), math.Floor(hi)
	if exLo && l == lo {
		l++
	}
	if exHi && h == hi {
		h--
	}
	if h < l {
		return int64(l)
	}
	l, h = max(l, -1<<53), min(h, 1<<53)
	return int64(l) + g.rng.Int64N(int64(h-l)+1)
}

func (g *valueGen) number(s *schema) float64 {
	lo, hi, exLo, exHi := s.bounds()
	v := lo + g.rng.Float64()*(hi-lo)
	if r := math.Round(v*100) / 100; r >= lo && r <= hi { // two decimals read better
		v = r
	}
	if exLo && v <= lo || exHi && v >= hi {
		v = lo + (hi-lo)/2
	}
	if math.IsInf(v, 0) || math.IsNaN(v) { // bounds beyond float64's range
		v = 0
	}
	return v
}

// str is a few words, or a value of the named format, fitted to
// minLength / maxLength.
func (g *valueGen) str(s *schema) string {
	word := func() string { w := vocab.spaced[g.rng.IntN(len(vocab.spaced))]; return w[1:] }
	var v string
	r := g.rng
	switch s.Format {
	case "date-time":
		v = "2025-" + two(1+r.IntN(12)) + "-" + two(1+r.IntN(28)) + "T" + two(r.IntN(24)) + ":" + two(r.IntN(60)) + ":" + two(r.IntN(60)) + "Z"
	case "date":
		v = "2025-" + two(1+r.IntN(12)) + "-" + two(1+r.IntN(28))
	case "time":
		v = two(r.IntN(24)) + ":" + two(r.IntN(60)) + ":" + two(r.IntN(60))
	case "email":
		v = word() + "@example.com"
	case "uri", "url", "uri-reference", "iri":
		v = "https://example.com/" + word()
	case "hostname":
		v = word() + ".example.com"
	case "ipv4":
		v = "10." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
	case "ipv6":
		v = "fd00::" + strconv.FormatUint(uint64(r.Uint32()&0xffff), 16)
	case "uuid":
		const hex = "0123456789abcdef"
		u := []byte("xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx")
		for i, c := range u {
			if c == 'x' {
				u[i] = hex[r.IntN(16)]
			}
		}
		v = string(u)
	default:
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = word()
		}
		v = strings.Join(parts, " ")
	}
	if s.MinLength != nil {
		for len([]rune(v)) < *s.MinLength {
			v += " " + word()
		}
	}
	if s.MaxLength != nil && len([]rune(v)) > *s.MaxLength {
		v = string([]rune(v)[:max(*s.MaxLength, 0)])
	}
	return v
}

func two(n int) string {
	return string([]byte{byte('0' + n/10%10), byte('0' + n%10)})
}

// appendCompact appends a JSON value from the schema (const, enum) without
// its insignificant whitespace.
func appendCompact(b []byte, raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(b, "null"...)
	}
	return append(b, buf.Bytes()...)
}
