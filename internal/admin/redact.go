package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnigate/omnigate/internal/config"
)

// Redacted replaces a secret in GET /admin/config.
const Redacted = "REDACTED"

// configDoc is a redacted config, as a YAML tree in the file's key order.
type configDoc struct{ node yaml.Node }

// redactedConfig copies cfg with its secrets replaced by Redacted. The
// copy is made by reflection over the whole tree rather than field by
// field, so a key added later is covered by the same rules:
//   - every string that is a URL loses its password and its query values;
//   - every string-to-string map (headers) keeps its keys, not its values;
//   - every string whose key names a secret (password, secret, token,
//     api_key…) is replaced, unless the key names an environment variable
//     or a file (…_env, …_file), which are fine to show.
func redactedConfig(cfg *config.Config) (*configDoc, error) {
	clean := redactValue(reflect.ValueOf(*cfg), "")
	b, err := yaml.Marshal(clean.Interface())
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	d := new(configDoc)
	if err := yaml.Unmarshal(b, &d.node); err != nil {
		return nil, fmt.Errorf("read back config: %w", err)
	}
	return d, nil
}

// redactValue returns a deep copy of v with secrets replaced; key is the
// YAML key v sits under.
func redactValue(v reflect.Value, key string) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out.Field(i).Set(redactValue(v.Field(i), name))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(redactValue(v.Elem(), key))
			out.Set(p)
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			for i := range v.Len() {
				s.Index(i).Set(redactValue(v.Index(i), key))
			}
			out.Set(s)
		}
	case reflect.Map:
		if !v.IsNil() {
			m := reflect.MakeMapWithSize(v.Type(), v.Len())
			secretValues := v.Type().Elem().Kind() == reflect.String
			for it := v.MapRange(); it.Next(); {
				e := redactValue(it.Value(), key)
				if secretValues && it.Value().String() != "" {
					e = reflect.ValueOf(Redacted).Convert(v.Type().Elem())
				}
				m.SetMapIndex(it.Key(), e)
			}
			out.Set(m)
		}
	case reflect.String:
		s := v.String()
		if s != "" && secretKey(key) {
			s = Redacted
		} else {
			s = redactURL(s)
		}
		out.SetString(s)
	default:
		out.Set(v)
	}
	return out
}

// secretKey reports whether a config key's value is a secret itself.
func secretKey(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_env") || strings.HasSuffix(k, "_file") {
		return false
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "api_key", "apikey", "credential", "private_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactURL hides the password and the query values of a URL; other
// strings come back as they are. A string that looks like a URL but does
// not parse is hidden whole: it may hold a password all the same.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	if u.User == nil && u.RawQuery == "" {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{Redacted}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// yaml renders the document as YAML, indented as config files are.
func (d *configDoc) yaml() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&d.node); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// json renders the document as JSON with the YAML keys, in their order.
func (d *configDoc) json() []byte {
	var b bytes.Buffer
	n := &d.node
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	writeNodeJSON(&b, n)
	b.WriteByte('\n')
	return b.Bytes()
}

// writeNodeJSON writes a YAML tree as JSON. The tree is one that
// yaml.Marshal wrote from Go values, so its scalars carry resolved tags.
func writeNodeJSON(b *bytes.Buffer, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, n.Content[i].Value)
			b.WriteByte(':')
			writeNodeJSON(b, n.Content[i+1])
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			writeNodeJSON(b, c)
		}
		b.WriteByte(']')
	case yaml.AliasNode:
		writeNodeJSON(b, n.Alias)
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool":
			v, _ := strconv.ParseBool(n.Value)
			b.WriteString(strconv.FormatBool(v))
		case "!!int", "!!float":
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil && json.Valid([]byte(n.Value)) {
				b.WriteString(n.Value)
			} else if err == nil {
				b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
			} else {
				writeString(b, n.Value) // .inf, .nan: no JSON number
			}
		default:
			writeString(b, n.Value)
		}
	default:
		b.WriteString("null")
	}
}

func writeString(b *bytes.Buffer, s string) {
	e, _ := json.Marshal(s) // a string cannot fail
	b.Write(e)
}
