package config

import (
	"encoding/hex"
	"fmt"
	"net"
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
	// Store is where keys managed at run time live, beside Keys.
	Store KeyStore `yaml:"store"`
	// Limits is where the keys' rate-limit and budget counters live.
	Limits LimitStore `yaml:"limits"`
}

// KeyStore is where keys live beside the config file's: none (the
// default: only auth.keys) or postgres, where the admin API creates,
// revokes and rotates them and every replica reads them.
type KeyStore struct {
	Kind     string      `yaml:"kind"` // none or postgres
	Postgres KeyPostgres `yaml:"postgres"`
}

// KeyPostgres is the PostgreSQL database of key store postgres.
type KeyPostgres struct {
	// DSNEnv names the variable holding the connection string
	// (postgres://user@127.0.0.1:5432/db).
	DSNEnv string `yaml:"dsn_env"`
	// Table holds the keys; created when missing. Default omnigate_api_keys.
	Table string `yaml:"table"`
	// Refresh is how often the keys are read again, so a key revoked on
	// one replica stops working on every other one within it. Default 5s.
	Refresh Duration `yaml:"refresh"`
}

// LimitStore is where rate-limit and budget counters live: memory (the
// default: this process) or redis (shared by every replica, so a limit
// holds for the fleet).
type LimitStore struct {
	Store string     `yaml:"store"`
	Redis RedisStore `yaml:"redis"`
	// OnStoreDown is what a request does while Redis cannot be reached:
	// local (the default: this process's own counters enforce the same
	// limits) or closed (refused, 503).
	OnStoreDown string `yaml:"on_store_down"`
}

// KeyLimits bound what a key (or one user of a key) may spend; 0: no limit.
// Minute limits are rates (a request spends its share, which comes back
// steadily over the minute); day and month budgets are totals that start
// again at midnight UTC and on the first of the month.
type KeyLimits struct {
	RequestsPerMinute int64 `yaml:"requests_per_minute"`
	// Tokens are prompt and completion tokens: a request reserves its
	// prompt's estimate, corrected to the usage its answer reports.
	TokensPerMinute int64 `yaml:"tokens_per_minute"`
	TokensPerDay    int64 `yaml:"tokens_per_day"`
	TokensPerMonth  int64 `yaml:"tokens_per_month"`
}

// Any reports whether l limits anything.
func (l KeyLimits) Any() bool {
	return l.RequestsPerMinute > 0 || l.TokensPerMinute > 0 || l.TokensPerDay > 0 || l.TokensPerMonth > 0
}

// Key stores and limit stores.
const (
	KeyStoreNone     = "none"
	KeyStorePostgres = "postgres"

	OnStoreDownLocal  = "local"
	OnStoreDownClosed = "closed"

	DefaultKeyTable      = "omnigate_api_keys"
	DefaultKeyRefresh    = 5 * time.Second
	DefaultLimitsPrefix  = "omnigate:limits"
	DefaultLimitsTimeout = 100 * time.Millisecond
)

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
	// Limits bound the key's requests and tokens.
	Limits KeyLimits `yaml:"limits"`
	// UserLimits bound each "user" (the request body's) of the key on its
	// own, within Limits.
	UserLimits KeyLimits `yaml:"user_limits"`
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

func (a *Auth) applyDefaults() {
	setDefault(&a.Store.Kind, KeyStoreNone)
	setDefault(&a.Store.Postgres.Table, DefaultKeyTable)
	setDefault(&a.Store.Postgres.Refresh, Duration(DefaultKeyRefresh))
	setDefault(&a.Limits.Store, StoreMemory)
	setDefault(&a.Limits.Redis.Prefix, DefaultLimitsPrefix)
	setDefault(&a.Limits.Redis.Timeout, Duration(DefaultLimitsTimeout))
	setDefault(&a.Limits.OnStoreDown, OnStoreDownLocal)
}

// keyLimits checks one key's limits at path p.
func (v *validator) keyLimits(p string, l KeyLimits) {
	for _, f := range []struct {
		name string
		n    int64
	}{{"requests_per_minute", l.RequestsPerMinute}, {"tokens_per_minute", l.TokensPerMinute}, {"tokens_per_day", l.TokensPerDay}, {"tokens_per_month", l.TokensPerMonth}} {
		if f.n < 0 {
			v.add(p+"."+f.name, "must be >= 0 (0: no limit), got %d", f.n)
		}
	}
}

func (v *validator) authStores(a *Auth) {
	switch a.Store.Kind {
	case KeyStoreNone:
	case KeyStorePostgres:
		if e := a.Store.Postgres.DSNEnv; e == "" {
			v.add("auth.store.postgres.dsn_env", "key store postgres needs the name of the variable holding its connection string")
		} else if !isEnvName(e) {
			v.add("auth.store.postgres.dsn_env", "%q is not an environment variable name", e)
		}
		if !isSQLName(a.Store.Postgres.Table) {
			v.add("auth.store.postgres.table", "%q is not a plain SQL table name (letters, digits, _)", a.Store.Postgres.Table)
		}
		if a.Store.Postgres.Refresh.D() <= 0 {
			v.add("auth.store.postgres.refresh", "must be > 0")
		}
	default:
		v.add("auth.store.kind", "%q is not none or postgres", a.Store.Kind)
	}
	switch a.Limits.Store {
	case StoreMemory:
	case StoreRedis:
		if a.Limits.Redis.Addr == "" {
			v.add("auth.limits.redis.addr", "limit store redis needs its host:port")
		} else if _, _, err := net.SplitHostPort(a.Limits.Redis.Addr); err != nil {
			v.add("auth.limits.redis.addr", "%q is not host:port (%v)", a.Limits.Redis.Addr, unwrapAddrErr(err))
		}
		if e := a.Limits.Redis.PasswordEnv; e != "" && !isEnvName(e) {
			v.add("auth.limits.redis.password_env", "%q is not an environment variable name", e)
		}
		v.nonNegative("auth.limits.redis.timeout", a.Limits.Redis.Timeout)
	default:
		v.add("auth.limits.store", "%q is not memory or redis", a.Limits.Store)
	}
	switch a.Limits.OnStoreDown {
	case OnStoreDownLocal, OnStoreDownClosed:
	default:
		v.add("auth.limits.on_store_down", "%q is not local or closed", a.Limits.OnStoreDown)
	}
}

// isSQLName reports whether s is a plain SQL identifier.
func isSQLName(s string) bool {
	if s == "" || len(s) > 63 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (v *validator) auth(c *Config, names map[string]bool) {
	v.authStores(&c.Auth)
	seenName, seenHash := map[string]bool{}, map[string]bool{}
	for i, k := range c.Auth.Keys {
		p := fmt.Sprintf("auth.keys[%d]", i)
		v.key(p, k, func(m string) bool { return names[m] })
		if k.Name != "" && seenName[k.Name] {
			v.add(p+".name", "%q names two keys", k.Name)
		}
		seenName[k.Name] = true
		if h, ok := strings.CutPrefix(k.Hash, HashPrefix); ok && validHash(h) {
			if seenHash[h] {
				v.add(p+".hash", "two keys have the same hash")
			}
			seenHash[h] = true
		}
	}
}

// CheckKey reports what is wrong with one key at path p: its name, hash,
// models (known says whether a name is a model's, an alias or auto),
// priority, expiry and limits. Whether its name and hash are unique is
// the caller's to check.
func CheckKey(p string, k APIKey, known func(string) bool) []Problem {
	v := &validator{}
	v.key(p, k, known)
	return v.problems
}

func (v *validator) key(p string, k APIKey, known func(string) bool) {
	if k.Name == "" {
		v.add(p+".name", "a key needs a name (it names the key in logs and metrics)")
	}
	if h, ok := strings.CutPrefix(k.Hash, HashPrefix); !ok || !validHash(h) {
		v.add(p+".hash", "must be %s and 64 hex digits (omnigate keys hash prints one), not the key itself", HashPrefix)
	}
	for j, m := range k.Models {
		if !known(m) {
			v.add(fmt.Sprintf("%s.models[%d]", p, j), "unknown model %q", m)
		}
	}
	if k.Priority != "" && k.Priority != "interactive" && k.Priority != "batch" {
		v.add(p+".priority", "%q is not interactive or batch", k.Priority)
	}
	if k.Expires != "" && k.ExpiresAt().IsZero() {
		v.add(p+".expires", "%q is not an RFC 3339 time or a date (2027-01-31)", k.Expires)
	}
	v.keyLimits(p+".limits", k.Limits)
	v.keyLimits(p+".user_limits", k.UserLimits)
}

// validHash reports whether h is 64 hex digits (a SHA-256).
func validHash(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == 32
}
