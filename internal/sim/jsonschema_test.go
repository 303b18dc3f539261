package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// validate checks v (decoded by encoding/json) against the JSON schema s
// (decoded the same way), independently of the generator's own reading of
// schemas. It covers the keywords the generator promises to honour.
func validate(root, s any, v any, at string) error {
	sch, ok := s.(map[string]any)
	if !ok {
		return nil // true, or absent: anything goes
	}
	if ref, ok := sch["$ref"].(string); ok {
		if ref == "#" {
			return validate(root, root, v, at)
		}
		name := ref[strings.LastIndex(ref, "/")+1:]
		r := root.(map[string]any)
		for _, key := range []string{"$defs", "definitions"} {
			if defs, ok := r[key].(map[string]any); ok && defs[name] != nil {
				return validate(root, defs[name], v, at)
			}
		}
		return fmt.Errorf("%s: unresolved $ref %s", at, ref)
	}
	if c, ok := sch["const"]; ok && !reflect.DeepEqual(c, v) {
		return fmt.Errorf("%s: %v is not the const %v", at, v, c)
	}
	if enum, ok := sch["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || reflect.DeepEqual(e, v)
		}
		if !found {
			return fmt.Errorf("%s: %v not in enum %v", at, v, enum)
		}
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if alts, ok := sch[key].([]any); ok {
			var errs []string
			for _, a := range alts {
				if err := validate(root, a, v, at); err == nil {
					errs = nil
					break
				} else {
					errs = append(errs, err.Error())
				}
			}
			if errs != nil {
				return fmt.Errorf("%s: no %s alternative matches: %s", at, key, strings.Join(errs, "; "))
			}
		}
	}
	if all, ok := sch["allOf"].([]any); ok {
		for _, a := range all {
			if err := validate(root, a, v, at); err != nil {
				return err
			}
		}
	}
	if t, ok := sch["type"]; ok {
		types, _ := t.([]any)
		if s, ok := t.(string); ok {
			types = []any{s}
		}
		match := false
		for _, t := range types {
			match = match || hasType(v, t.(string))
		}
		if !match {
			return fmt.Errorf("%s: %#v is not of type %v", at, v, t)
		}
	}
	num := func(key string) (float64, bool) { f, ok := sch[key].(float64); return f, ok }
	switch v := v.(type) {
	case map[string]any:
		req, _ := sch["required"].([]any)
		for _, r := range req {
			if _, ok := v[r.(string)]; !ok {
				return fmt.Errorf("%s: required %q missing", at, r)
			}
		}
		props, _ := sch["properties"].(map[string]any)
		for k, pv := range v {
			if err := validate(root, props[k], pv, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if n, ok := num("minItems"); ok && float64(len(v)) < n {
			return fmt.Errorf("%s: %d items < minItems %g", at, len(v), n)
		}
		if n, ok := num("maxItems"); ok && float64(len(v)) > n {
			return fmt.Errorf("%s: %d items > maxItems %g", at, len(v), n)
		}
		prefix, _ := sch["prefixItems"].([]any)
		for i, item := range v {
			is := sch["items"]
			if i < len(prefix) {
				is = prefix[i]
			}
			if err := validate(root, is, item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case float64:
		if n, ok := num("minimum"); ok && v < n {
			return fmt.Errorf("%s: %g < minimum %g", at, v, n)
		}
		if n, ok := num("maximum"); ok && v > n {
			return fmt.Errorf("%s: %g > maximum %g", at, v, n)
		}
		if n, ok := num("exclusiveMinimum"); ok && v <= n {
			return fmt.Errorf("%s: %g <= exclusiveMinimum %g", at, v, n)
		}
		if n, ok := num("exclusiveMaximum"); ok && v >= n {
			return fmt.Errorf("%s: %g >= exclusiveMaximum %g", at, v, n)
		}
	case string:
		if n, ok := num("minLength"); ok && float64(utf8.RuneCountInString(v)) < n {
			return fmt.Errorf("%s: %q shorter than %g", at, v, n)
		}
		if n, ok := num("maxLength"); ok && float64(utf8.RuneCountInString(v)) > n {
			return fmt.Errorf("%s: %q longer than %g", at, v, n)
		}
		if f, _ := sch["format"].(string); !hasFormat(v, f) {
			return fmt.Errorf("%s: %q is not a %s", at, v, f)
		}
	}
	return nil
}

func hasType(v any, t string) bool {
	switch v := v.(type) {
	case nil:
		return t == "null"
	case bool:
		return t == "boolean"
	case string:
		return t == "string"
	case float64:
		return t == "number" || t == "integer" && v == math.Trunc(v)
	case []any:
		return t == "array"
	case map[string]any:
		return t == "object"
	}
	return false
}

func hasFormat(v, f string) bool {
	switch f {
	case "date-time":
		_, err := time.Parse(time.RFC3339, v)
		return err == nil
	case "date":
		_, err := time.Parse(time.DateOnly, v)
		return err == nil
	case "email":
		return strings.Count(v, "@") == 1
	case "uri":
		return strings.HasPrefix(v, "https://")
	case "uuid":
		return len(v) == 36 && strings.Count(v, "-") == 4
	}
	return true
}

// checkAgainst decodes text as JSON and validates it against schemaText.
func checkAgainst(t *testing.T, schemaText, text string) {
	t.Helper()
	var sch, v any
	if err := json.Unmarshal([]byte(schemaText), &sch); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, text)
	}
	if err := validate(sch, sch, v, "$"); err != nil {
		t.Errorf("%v\nvalue: %s", err, text)
	}
}

// weatherSchema is a typical tool signature: every type the generator
// knows, a nested object by $ref, an optional nullable field.
const weatherSchema = `{"type":"object","properties":{
	"city":{"type":"string","description":"city name"},
	"unit":{"type":"string","enum":["celsius","fahrenheit"]},
	"days":{"type":"integer","minimum":1,"maximum":14},
	"threshold":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},
	"alerts":{"type":"boolean"},
	"when":{"type":"string","format":"date-time"},
	"tags":{"type":"array","items":{"type":"string","maxLength":6},"minItems":2,"maxItems":4},
	"where":{"$ref":"#/$defs/Point"},
	"note":{"type":["string","null"]},
	"kind":{"const":"forecast"},
	"mode":{"anyOf":[{"type":"integer","minimum":100},{"type":"null"}]}
},"required":["city","unit","days","where"],
"$defs":{"Point":{"type":"object","properties":{"lat":{"type":"number","minimum":-90,"maximum":90},"lon":{"type":"number","minimum":-180,"maximum":180}},"required":["lat","lon"]}}}`

func TestSchemaValues(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{"weather", weatherSchema},
		{"empty object", `{"type":"object","properties":{}}`},
		{"no type", `{"properties":{"q":{"type":"string","minLength":30}},"required":["q"]}`},
		{"required only", `{"type":"object","required":["a","b"]}`},
		{"array root", `{"type":"array","items":{"type":"integer","exclusiveMinimum":5,"maximum":6}}`},
		{"prefix items", `{"type":"array","prefixItems":[{"type":"string","format":"email"},{"type":"boolean"}],"items":{"type":"null"}}`},
		{"allOf", `{"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},{"properties":{"b":{"type":"string","format":"uuid"}},"required":["b"]}]}`},
		{"recursive", `{"$ref":"#/$defs/Node","$defs":{"Node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/Node"}}},"required":["name","children"]}}}`},
		{"recursive optional", `{"type":"object","properties":{"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]},"v":{"type":"integer"}},"required":["next","v"]}`},
		{"draft 4 exclusive", `{"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":2,"exclusiveMinimum":true,"exclusiveMaximum":true}},"required":["n"]}`},
		{"definitions", `{"type":"object","properties":{"d":{"$ref":"#/definitions/D"}},"required":["d"],"definitions":{"D":{"type":"string","format":"date","enum":["2025-01-02"]}}}`},
		{"boolean schemas", `{"type":"object","properties":{"x":true,"y":{"type":"array","items":true}},"required":["x","y"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSchema(json.RawMessage(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			for seed := range uint64(20) {
				b := newValueGen(seed, s).value(nil, s, 0)
				checkAgainst(t, tc.schema, string(b))
				if again := newValueGen(seed, s).value(nil, s, 0); !bytes.Equal(b, again) {
					t.Fatalf("seed %d: %s then %s", seed, b, again)
				}
			}
		})
	}
}

func TestSchemaKeyOrder(t *testing.T) {
	const sch = `{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"},"mid":{"type":"integer"}}}`
	s, err := parseSchema(json.RawMessage(sch))
	if err != nil {
		t.Fatal(err)
	}
	got := string(newValueGen(1, s).value(nil, s, 0))
	if !(strings.Index(got, `"zeta"`) < strings.Index(got, `"alpha"`) && strings.Index(got, `"alpha"`) < strings.Index(got, `"mid"`)) {
		t.Errorf("keys out of the schema's order: %s", got)
	}
}
