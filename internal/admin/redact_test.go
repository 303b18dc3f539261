package admin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
)

const secret = "s3cret"

// fill sets every field of v, all the way down, to something: each string
// to a URL that carries secret as its password and in its query, each
// string-to-string map to one entry whose value is secret, each string
// under a secret-named key to secret itself; slices get one element and
// pointers a value. Whatever the config grows, a field that can hold a
// string is filled, so the redaction test covers it.
func fill(v reflect.Value, key string) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
				fill(v.Field(i), name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), key)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), key)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		if k.Kind() == reflect.String {
			k.SetString("k")
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if e.Kind() == reflect.String {
			e.SetString(secret)
		} else {
			fill(e, key)
		}
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		if secretKey(key) {
			v.SetString(secret)
		} else {
			v.SetString("https://user:" + secret + "@host.example/path?token=" + secret + "&x=" + secret)
		}
	}
}

// TestRedactEveryField: with every field of the config filled with
// secrets, the redacted config shows none of them.
func TestRedactEveryField(t *testing.T) {
	var cfg config.Config
	fill(reflect.ValueOf(&cfg).Elem(), "")
	doc, err := redactedConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := doc.yaml()
	if err != nil {
		t.Fatal(err)
	}
	j := doc.json()
	if !json.Valid(j) {
		t.Fatalf("invalid JSON: %s", j)
	}
	for name, out := range map[string]string{"yaml": string(y), "json": string(j)} {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret:\n%s", name, out)
		}
		if !strings.Contains(out, "user:REDACTED@host.example") {
			t.Errorf("%s lost the URLs' user names:\n%s", name, out)
		}
	}
	// The original is untouched.
	if cfg.Models[0].Deployments[0].Headers["k"] != secret {
		t.Error("redaction changed the config it copied")
	}
}

func TestRedactedConfigKeysAndOrder(t *testing.T) {
	cfg := config.Default()
	cfg.Models[0].Deployments[0].Headers = map[string]string{"X-Key": "hidden"}
	cfg.ApplyDefaults()
	doc, err := redactedConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := string(doc.json())
	// Keys are the file's, in its order (server first), not Go's names.
	if !strings.HasPrefix(j, `{"server":{"addr":"127.0.0.1:8080","max_body_bytes":33554432,"shutdown_grace":"15s"`) {
		t.Errorf("JSON starts %.200s", j)
	}
	var back struct {
		Models []struct {
			Limits struct {
				Temperature []float64 `json:"temperature"`
			} `json:"limits"`
			Deployments []struct {
				Headers map[string]string `json:"headers"`
			} `json:"deployments"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(j), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{0, 2}, back.Models[0].Limits.Temperature); diff != "" {
		t.Errorf("temperature (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"X-Key": Redacted}, back.Models[0].Deployments[0].Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://10.0.0.5:8000/v1", "http://10.0.0.5:8000/v1"},
		{"https://user:pw@otel.example/v1/traces", "https://user:REDACTED@otel.example/v1/traces"},
		{"https://user@otel.example/", "https://user@otel.example/"},
		{"https://otel.example/v1/traces?api_key=k1&region=eu", "https://otel.example/v1/traces?api_key=REDACTED&region=REDACTED"},
		{"redis://:pw@127.0.0.1:6379/0", "redis://:REDACTED@127.0.0.1:6379/0"},
		{"http://user:pw@[::1", Redacted}, // does not parse
		{"qwen3-omni-7b", "qwen3-omni-7b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecretKey(t *testing.T) {
	for key, want := range map[string]bool{
		"password": true, "api_key": true, "admin_token": true, "client_secret": true, "apikey": true,
		"api_key_env": false, "admin_token_env": false, "headers_env": false, "token_file": false,
		"url": false, "name": false, "profile": false,
	} {
		if got := secretKey(key); got != want {
			t.Errorf("secretKey(%q) = %v, want %v", key, got, want)
		}
	}
}
