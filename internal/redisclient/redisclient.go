// Package redisclient makes the Redis clients of the request path (the
// answer cache, the limit counters): every command bounded by one
// timeout, no retry and one dial attempt, so a Redis that fails costs a
// request at most that timeout and the caller's policy decides the rest.
package redisclient

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// New returns a client of the server at addr; it connects on first use.
func New(addr, password string, db int, timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Password: password, DB: db,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		// A request never waits long for a pooled connection either.
		PoolTimeout: timeout,
		MaxRetries:  -1,
		// One dial: a server that refuses is down now, not after 400 ms
		// of retries held against a request.
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond,
	})
}
