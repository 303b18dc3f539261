package config

import (
	"fmt"
	"net"
	"slices"
	"time"
)

// Cache is a model's answer cache: complete, successful answers kept and
// served again to requests that will get the same answer.
type Cache struct {
	// Mode is off (the default), exact, or semantic (exact first, then a
	// close enough earlier prompt, by its embedding).
	Mode string `yaml:"mode"`
	// TTL is how long an answer is kept; default 1h.
	TTL Duration `yaml:"ttl"`
	// Store is memory (the default: this process), redis (shared by every
	// replica pointing at cache.redis) or both (memory in front of Redis).
	Store string `yaml:"store"`
	// Scope separates whose answers are shared: none (the default: every
	// client shares), api_key (per Authorization header) or user (per the
	// body's "user").
	Scope string `yaml:"scope"`
	// Random also keeps answers sampled with a temperature above 0 and no
	// seed, which another request would likely get differently. Default
	// false: only temperature 0 (explicit) or a seed is cached.
	Random bool `yaml:"random"`
	// MaxEntryBytes is the largest answer kept; default 1 MiB.
	MaxEntryBytes int64 `yaml:"max_entry_bytes"`
	// Semantic configures the semantic cache (mode semantic).
	Semantic SemanticCache `yaml:"semantic"`
}

// SemanticCache finds an earlier answer to a prompt close enough to this
// one: the last user turn, embedded by an embeddings model, within the
// scope of everything else in the request (system prompt, earlier turns,
// parameters) being equal.
type SemanticCache struct {
	// Embeddings names the model (in this config) that embeds prompts:
	// one serving /v1/embeddings.
	Embeddings string `yaml:"embeddings"`
	// Threshold is the cosine similarity at or above which an earlier
	// prompt counts as the same; default 0.95 (see docs/semantic-cache.md
	// on choosing it).
	Threshold float64 `yaml:"threshold"`
	// Timeout bounds the embeddings request of a lookup; past it the
	// request is a plain miss. Default 1s.
	Timeout Duration `yaml:"timeout"`
}

// On reports whether the cache is on.
func (c Cache) On() bool { return c.Mode == CacheExact || c.Mode == CacheSemantic }

// Cache modes, stores and scopes.
const (
	CacheOff      = "off"
	CacheExact    = "exact"
	CacheSemantic = "semantic"

	StoreMemory = "memory"
	StoreRedis  = "redis"
	StoreBoth   = "both"

	ScopeNone   = "none"
	ScopeAPIKey = "api_key"
	ScopeUser   = "user"

	DefaultCacheTTL          = time.Hour
	DefaultCacheEntryBytes   = 1 << 20
	DefaultSemanticThreshold = 0.95
	DefaultSemanticTimeout   = time.Second
	DefaultMemoryEntries     = 1024
	DefaultMemoryBytes       = 64 << 20
	DefaultRedisPrefix       = "omnigate:cache"
	DefaultRedisTimeout      = 100 * time.Millisecond
)

// CacheStores are the stores the models' caches share.
type CacheStores struct {
	Memory MemoryStore `yaml:"memory"`
	Redis  RedisStore  `yaml:"redis"`
}

// MemoryStore bounds the in-process store (one for every model).
type MemoryStore struct {
	MaxEntries int   `yaml:"max_entries"` // default 1024
	MaxBytes   int64 `yaml:"max_bytes"`   // default 64 MiB
}

// RedisStore is the shared store.
type RedisStore struct {
	Addr        string   `yaml:"addr"`         // host:port; required by a model with store redis or both
	PasswordEnv string   `yaml:"password_env"` // the variable holding the password, if any
	DB          int      `yaml:"db"`
	Prefix      string   `yaml:"prefix"`  // default omnigate:cache
	Timeout     Duration `yaml:"timeout"` // per command; default 100ms
}

func (c *Cache) applyDefaults() {
	setDefault(&c.Mode, CacheOff)
	setDefault(&c.TTL, Duration(DefaultCacheTTL))
	setDefault(&c.Store, StoreMemory)
	setDefault(&c.Scope, ScopeNone)
	setDefault(&c.MaxEntryBytes, DefaultCacheEntryBytes)
	setDefault(&c.Semantic.Threshold, DefaultSemanticThreshold)
	setDefault(&c.Semantic.Timeout, Duration(DefaultSemanticTimeout))
}

func (s *CacheStores) applyDefaults() {
	setDefault(&s.Memory.MaxEntries, DefaultMemoryEntries)
	setDefault(&s.Memory.MaxBytes, DefaultMemoryBytes)
	setDefault(&s.Redis.Prefix, DefaultRedisPrefix)
	setDefault(&s.Redis.Timeout, Duration(DefaultRedisTimeout))
}

func (v *validator) cache(p string, c *Cache, stores *CacheStores, models map[string]*Model) {
	switch c.Mode {
	case CacheOff, CacheExact, CacheSemantic:
	default:
		v.add(p+".mode", "%q is not off, exact or semantic", c.Mode)
	}
	switch c.Store {
	case StoreMemory:
	case StoreRedis, StoreBoth:
		if c.On() && stores.Redis.Addr == "" {
			v.add(p+".store", "store %s needs cache.redis.addr", c.Store)
		}
	default:
		v.add(p+".store", "%q is not memory, redis or both", c.Store)
	}
	switch c.Scope {
	case ScopeNone, ScopeAPIKey, ScopeUser:
	default:
		v.add(p+".scope", "%q is not none, api_key or user", c.Scope)
	}
	v.nonNegative(p+".ttl", c.TTL)
	if c.MaxEntryBytes < 0 {
		v.add(p+".max_entry_bytes", "must be > 0, got %d", c.MaxEntryBytes)
	}
	if c.Mode == CacheSemantic {
		s := c.Semantic
		if !(s.Threshold > 0 && s.Threshold <= 1) {
			v.add(p+".semantic.threshold", "must be above 0 and at most 1, got %s", fmt.Sprint(s.Threshold))
		}
		v.nonNegative(p+".semantic.timeout", s.Timeout)
		switch m := models[s.Embeddings]; {
		case s.Embeddings == "":
			v.add(p+".semantic.embeddings", "mode semantic needs the name of a model that serves embeddings")
		case m == nil:
			v.add(p+".semantic.embeddings", "%q is not a model of this config", s.Embeddings)
		case !slices.Contains(m.Capabilities.Endpoints, EndpointEmbeddings):
			v.add(p+".semantic.embeddings", "model %q does not serve embeddings (capabilities.endpoints)", s.Embeddings)
		}
	}
}

func (v *validator) cacheStores(s *CacheStores) {
	if s.Memory.MaxEntries < 0 {
		v.add("cache.memory.max_entries", "must be > 0, got %d", s.Memory.MaxEntries)
	}
	if s.Memory.MaxBytes < 0 {
		v.add("cache.memory.max_bytes", "must be > 0, got %d", s.Memory.MaxBytes)
	}
	if a := s.Redis.Addr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.add("cache.redis.addr", "%q is not host:port (%v)", a, unwrapAddrErr(err))
		}
	}
	if e := s.Redis.PasswordEnv; e != "" && !isEnvName(e) {
		v.add("cache.redis.password_env", "%q is not an environment variable name", e)
	}
	v.nonNegative("cache.redis.timeout", s.Redis.Timeout)
}
