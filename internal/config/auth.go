package config

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Auth is who may call the API: clients send Authorization: Bearer <key>,
// as the OpenAI SDKs do. With no keys, anyone who reaches the listener
// may, which serve allows only on loopback unless Open says so.
type Auth struct {
	Keys []APIKey `yaml:"keys"`
	// Open serves without keys on an address beyond loopback.
	Open bool `yaml:"open"`
}

// APIKey is one client key: never the secret, only its hash
// (`omnigate keys hash` prints one).
type APIKey struct {
	// Name names the key in logs and metrics.
	Name string `yaml:"name"`
	// Hash is "sha256:" and the hex SHA-256 of the secret.
	Hash string `yaml:"hash"`
	// Models are the names and aliases the key may use ("auto" too);
	// empty: every one.
	Models []string `yaml:"models"`
	// Priority is the admission priority of its requests: interactive
	// (default) or batch.
	Priority string `yaml:"priority"`
	// Expires, when set, is when the key stops working: an RFC 3339 time
	// or a date (2027-01-31, its start in UTC).
	Expires string `yaml:"expires"`
}

// HashPrefix starts every key hash.
const HashPrefix = "sha256:"

// ExpiresAt returns when the key expires; zero: never.
func (k APIKey) ExpiresAt() time.Time {
	if k.Expires == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339, k.Expires); err == nil {
		return t
	}
	t, _ := time.Parse(time.DateOnly, k.Expires)
	return t
}

func (v *validator) auth(c *Config, names map[string]bool) {
	seenName, seenHash := map[string]bool{}, map[string]bool{}
	for i, k := range c.Auth.Keys {
		p := fmt.Sprintf("auth.keys[%d]", i)
		switch {
		case k.Name == "":
			v.add(p+".name", "a key needs a name (it names the key in logs and metrics)")
		case seenName[k.Name]:
			v.add(p+".name", "%q names two keys", k.Name)
		}
		seenName[k.Name] = true
		h, ok := strings.CutPrefix(k.Hash, HashPrefix)
		if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != 32 {
			v.add(p+".hash", "must be %s and 64 hex digits (omnigate keys hash prints one), not the key itself", HashPrefix)
		} else if seenHash[h] {
			v.add(p+".hash", "two keys have the same hash")
		}
		seenHash[h] = true
		for j, m := range k.Models {
			if !names[m] {
				v.add(fmt.Sprintf("%s.models[%d]", p, j), "unknown model %q", m)
			}
		}
		if k.Priority != "" && k.Priority != "interactive" && k.Priority != "batch" {
			v.add(p+".priority", "%q is not interactive or batch", k.Priority)
		}
		if k.Expires != "" && k.ExpiresAt().IsZero() {
			v.add(p+".expires", "%q is not an RFC 3339 time or a date (2027-01-31)", k.Expires)
		}
	}
}
