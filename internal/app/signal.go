package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// onHangup reloads the config on every SIGHUP until ctx ends or the
// returned stop is called. Without it SIGHUP ends the process.
func onHangup(ctx context.Context, rl *reloader, log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				log.Info("SIGHUP: reloading the config")
				rl.Reload(ctx) // a rejection is logged; the running config stays
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// overrideEnv is getenv with key set to value.
func overrideEnv(getenv func(string) string, key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return getenv(k)
	}
}
