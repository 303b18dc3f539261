// Package auth checks who calls the API: the client's bearer key, looked
// up by its SHA-256 among the configured keys (the secrets themselves are
// never stored), the models it may use and its admission priority.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
)

// Key is one configured key, compiled.
type Key struct {
	Name string
	// Batch: its requests wait at the admission queue's batch priority.
	Batch bool
	// Limits bound the key's requests and tokens; UserLimits each user's
	// of it (see config.APIKey).
	Limits, UserLimits config.KeyLimits
	expires            time.Time       // zero: never
	models             map[string]bool // the public names it may use; nil: all
	auto               bool            // it may use the auto names
}

// Keys are the configured keys by hash. A nil *Keys lets everyone in.
type Keys struct {
	byHash map[[32]byte]*Key
	byName map[string]*Key
}

// New compiles the keys of cfg over cat; nil when there are none.
func New(cfg config.Auth, cat *catalog.Catalog, isAuto func(string) bool) *Keys {
	if len(cfg.Keys) == 0 {
		return nil
	}
	return compile(merge(cfg.Keys, nil), cat, isAuto)
}

// compile compiles the entries in force over cat; never nil, so that a
// directory of no keys refuses everyone.
func compile(entries []Entry, cat *catalog.Catalog, isAuto func(string) bool) *Keys {
	ks := &Keys{byHash: make(map[[32]byte]*Key, len(entries)), byName: make(map[string]*Key, len(entries))}
	for _, e := range entries {
		if e.Ignored != "" {
			continue
		}
		c := e.APIKey
		k := &Key{Name: c.Name, Batch: c.Priority == "batch", Limits: c.Limits, UserLimits: c.UserLimits, expires: c.ExpiresAt()}
		if len(c.Models) > 0 {
			k.models = map[string]bool{}
			for _, n := range c.Models {
				if isAuto(n) {
					k.auto = true
				} else if m, ok := cat.Lookup(n); ok {
					k.models[m.Name] = true
				}
			}
		}
		ks.byHash[e.sum] = k
		ks.byName[k.Name] = k
	}
	return ks
}

// NewSecret returns a new random key: "og-" and 24 random bytes in
// URL-safe base64.
func NewSecret() string {
	var b [24]byte
	rand.Read(b[:]) // never fails
	return "og-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash returns the config form of a key's hash: "sha256:<hex>".
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return config.HashPrefix + hex.EncodeToString(sum[:])
}

// Authenticate returns the key of the request with headers h at now: nil
// and no error when ks is nil (no keys configured); else a 401 in
// OpenAI's shape for a missing, unknown or expired key.
func (ks *Keys) Authenticate(h http.Header, now time.Time) (*Key, error) {
	if ks == nil {
		return nil, nil
	}
	var v string
	if a := h["Authorization"]; len(a) > 0 {
		v = a[0]
	}
	secret, ok := strings.CutPrefix(v, "Bearer ")
	if !ok || secret == "" {
		return nil, unauthorized("You didn't provide an API key. Provide it in an Authorization header: Bearer YOUR_KEY.")
	}
	k := ks.byHash[sha256.Sum256([]byte(secret))]
	switch {
	case k == nil:
		return nil, unauthorized("Incorrect API key provided.")
	case !k.expires.IsZero() && !now.Before(k.expires):
		return nil, unauthorized("The API key %s expired at %s.", k.Name, k.expires.Format(time.RFC3339))
	}
	return k, nil
}

// Limited reports whether the key has limits or budgets.
func (k *Key) Limited() bool { return k.Limits.Any() || k.UserLimits.Any() }

// NameOr returns the key's name; "" for nil (no keys).
func (k *Key) NameOr() string {
	if k == nil {
		return ""
	}
	return k.Name
}

// Named returns the key named name, or nil: a job's runs carry the name
// of the key that submitted it, so a key removed meanwhile stops them.
func (ks *Keys) Named(name string) *Key {
	if ks == nil {
		return nil
	}
	return ks.byName[name]
}

// Allows reports whether the key may use model (a public name), or, for
// a request to an auto name, automatic routing (auto).
func (k *Key) Allows(model string, auto bool) error {
	if k == nil || k.models == nil || (auto && k.auto) || (!auto && k.models[model]) {
		return nil
	}
	name := model
	if auto {
		name = "automatic routing"
	}
	e := apierror.New(http.StatusForbidden, "model_not_allowed", "The API key %s may not use %s.", k.Name, name)
	e.Param = "model"
	return e
}

func unauthorized(format string, args ...any) *apierror.Error {
	e := apierror.New(http.StatusUnauthorized, "invalid_api_key", format, args...)
	e.Type = "invalid_request_error"
	return e
}
