package config

import (
	"net"
	"net/url"
	"path/filepath"
	"time"
)

// Jobs configures background jobs (X-Omnigate-Async), the Batch API and
// the files they read and write.
type Jobs struct {
	// Store is where jobs, batches and files live: embedded (one file
	// under Dir, for one gateway; nothing to install), redis or nats
	// (shared by every gateway that names the same server). Default
	// embedded.
	Store string `yaml:"store"`
	// Dir holds the embedded store's database and, with files dir, the
	// file contents. Default ./omnigate-data; created on the first job.
	Dir   string    `yaml:"dir"`
	Redis JobsRedis `yaml:"redis"`
	NATS  JobsNATS  `yaml:"nats"`
	// Files is where file contents live: dir (under Dir/files, or a
	// directory every gateway mounts), redis or nats (its object store).
	// Default: dir for the embedded store, else the store's own.
	Files string `yaml:"files"`
	// Workers is how many jobs one gateway runs at once. They run at the
	// admission queue's batch priority: interactive requests go first.
	// Default 16.
	Workers int `yaml:"workers"`
	// Lease is how long a job claimed by a gateway stays its own without
	// word from it; a gateway that dies loses its jobs to another after
	// this long. Default 30s.
	Lease Duration `yaml:"lease"`
	// MaxAttempts bounds the runs of one job through the request core,
	// retryable failures (503, 429, timeouts) included. Default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Window is how long a background job may wait to run before it
	// expires (a batch's is its completion_window). Default 24h.
	Window Duration `yaml:"window"`
	// Retention is how long finished jobs, batches and files are kept.
	// Default 168h (a week).
	Retention Duration `yaml:"retention"`
	// MaxFileBytes bounds one uploaded file. Default 200 MiB (OpenAI's
	// batch input limit).
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// MaxBatchRequests bounds the lines of one batch. Default 50000
	// (OpenAI's).
	MaxBatchRequests int     `yaml:"max_batch_requests"`
	Webhook          Webhook `yaml:"webhook"`
}

// JobsRedis is the Redis server of store redis.
type JobsRedis struct {
	Addr        string `yaml:"addr"` // host:port; required by store redis
	PasswordEnv string `yaml:"password_env"`
	DB          int    `yaml:"db"`
	Prefix      string `yaml:"prefix"` // default omnigate:jobs
}

// JobsNATS is the NATS server (JetStream on) of store nats.
type JobsNATS struct {
	URL string `yaml:"url"` // required by store nats: nats://127.0.0.1:4222
	// Prefix names the stream, key-value bucket and object store the
	// jobs use. Default OMNIGATE_JOBS.
	Prefix string `yaml:"prefix"`
	// CredentialsEnv names a variable holding a credentials file path.
	CredentialsEnv string `yaml:"credentials_env"`
}

// Webhook is the completion callbacks a background job may ask for
// (X-Omnigate-Webhook). They are signed with HMAC-SHA256 under the secret
// in SecretEnv; without one, jobs cannot ask for webhooks.
type Webhook struct {
	SecretEnv string `yaml:"secret_env"`
	// AllowedHosts limits the hosts a webhook may call (host or
	// host:port); empty: any.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// Attempts bounds the deliveries of one callback, with exponential
	// backoff from 1s. Default 8.
	Attempts int      `yaml:"attempts"`
	Timeout  Duration `yaml:"timeout"` // per delivery; default 10s
}

// Words and defaults of the jobs keys.
const (
	JobsEmbedded   = "embedded"
	JobsRedisStore = "redis"
	JobsNATSStore  = "nats"
	FilesDir       = "dir"

	DefaultJobsDir = "omnigate-data"
	// EmbeddedJobsFile is the embedded store's database, under Dir.
	EmbeddedJobsFile        = "jobs.db"
	DefaultJobsWorkers      = 16
	DefaultJobsLease        = 30 * time.Second
	DefaultJobsMaxAttempts  = 5
	DefaultJobsWindow       = 24 * time.Hour
	DefaultJobsRetention    = 7 * 24 * time.Hour
	DefaultMaxFileBytes     = 200 << 20
	DefaultMaxBatchRequests = 50000
	DefaultJobsRedisPrefix  = "omnigate:jobs"
	DefaultJobsNATSPrefix   = "OMNIGATE_JOBS"
	DefaultWebhookAttempts  = 8
	DefaultWebhookTimeout   = 10 * time.Second

	// DefaultGRPCAddr is the gRPC listener's: gRPC's usual port (9090,
	// the other common choice, is Prometheus's). GRPCOff turns it off.
	DefaultGRPCAddr = "127.0.0.1:50051"
	GRPCOff         = "off"
)

func (j *Jobs) applyDefaults() {
	setDefault(&j.Store, JobsEmbedded)
	setDefault(&j.Dir, DefaultJobsDir)
	if j.Files == "" {
		j.Files = FilesDir
		if j.Store != JobsEmbedded {
			j.Files = j.Store
		}
	}
	setDefault(&j.Workers, DefaultJobsWorkers)
	setDefault(&j.Lease, Duration(DefaultJobsLease))
	setDefault(&j.MaxAttempts, DefaultJobsMaxAttempts)
	setDefault(&j.Window, Duration(DefaultJobsWindow))
	setDefault(&j.Retention, Duration(DefaultJobsRetention))
	setDefault(&j.MaxFileBytes, DefaultMaxFileBytes)
	setDefault(&j.MaxBatchRequests, DefaultMaxBatchRequests)
	setDefault(&j.Redis.Prefix, DefaultJobsRedisPrefix)
	setDefault(&j.NATS.Prefix, DefaultJobsNATSPrefix)
	setDefault(&j.Webhook.Attempts, DefaultWebhookAttempts)
	setDefault(&j.Webhook.Timeout, Duration(DefaultWebhookTimeout))
}

// FilesPath is the directory of file contents with files dir.
func (j *Jobs) FilesPath() string { return filepath.Join(j.Dir, "files") }

func (v *validator) jobs(j *Jobs) {
	switch j.Store {
	case JobsEmbedded:
	case JobsRedisStore:
		if j.Redis.Addr == "" {
			v.add("jobs.redis.addr", "store redis needs the server's host:port")
		} else if _, _, err := net.SplitHostPort(j.Redis.Addr); err != nil {
			v.add("jobs.redis.addr", "%q is not host:port (%v)", j.Redis.Addr, unwrapAddrErr(err))
		}
	case JobsNATSStore:
		if u, err := url.Parse(j.NATS.URL); j.NATS.URL == "" || err != nil || u.Host == "" {
			v.add("jobs.nats.url", "store nats needs the server's URL (nats://host:port), got %q", j.NATS.URL)
		}
	default:
		v.add("jobs.store", "%q is not embedded, redis or nats", j.Store)
	}
	switch j.Files {
	case FilesDir:
	case JobsRedisStore, JobsNATSStore:
		if j.Files != j.Store {
			v.add("jobs.files", "files %s needs store %s", j.Files, j.Files)
		}
	default:
		v.add("jobs.files", "%q is not dir, redis or nats", j.Files)
	}
	if j.Redis.PasswordEnv != "" && !isEnvName(j.Redis.PasswordEnv) {
		v.add("jobs.redis.password_env", "%q is not an environment variable name", j.Redis.PasswordEnv)
	}
	if j.NATS.CredentialsEnv != "" && !isEnvName(j.NATS.CredentialsEnv) {
		v.add("jobs.nats.credentials_env", "%q is not an environment variable name", j.NATS.CredentialsEnv)
	}
	if j.Workers < 0 {
		v.add("jobs.workers", "must be > 0, got %d", j.Workers)
	}
	if j.Lease < Duration(time.Second) {
		v.add("jobs.lease", "must be at least 1s, got %s", j.Lease)
	}
	if j.MaxAttempts < 0 {
		v.add("jobs.max_attempts", "must be > 0, got %d", j.MaxAttempts)
	}
	v.nonNegative("jobs.window", j.Window)
	v.nonNegative("jobs.retention", j.Retention)
	if j.MaxFileBytes < 0 {
		v.add("jobs.max_file_bytes", "must be > 0, got %d", j.MaxFileBytes)
	}
	if j.MaxBatchRequests < 0 {
		v.add("jobs.max_batch_requests", "must be > 0, got %d", j.MaxBatchRequests)
	}
	if e := j.Webhook.SecretEnv; e != "" && !isEnvName(e) {
		v.add("jobs.webhook.secret_env", "%q is not an environment variable name", e)
	}
	if j.Webhook.Attempts < 0 {
		v.add("jobs.webhook.attempts", "must be > 0, got %d", j.Webhook.Attempts)
	}
	v.nonNegative("jobs.webhook.timeout", j.Webhook.Timeout)
}

func (v *validator) grpc(s *Server) {
	if a := s.GRPCAddr; a != GRPCOff {
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.add("server.grpc_addr", "%q is not host:port or %q (%v)", a, GRPCOff, unwrapAddrErr(err))
		} else if (a == s.Addr || a == s.AdminAddr) && !hasPort0(a) {
			v.add("server.grpc_addr", "%q is taken by another listener: gRPC needs one of its own", a)
		}
	}
	v.listenerTLS("server.grpc_tls", s.GRPCTLS)
}

func hasPort0(a string) bool {
	_, p, err := net.SplitHostPort(a)
	return err == nil && p == "0"
}
