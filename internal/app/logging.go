package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/omnigate/omnigate/internal/config"
)

// logLevel parses a level name (debug, info, warn, error).
func logLevel(name string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToLower(name)))
	return l, err
}

// newLogger builds the process logger from the config's logging section:
// text or JSON on w, at the level held in level, which a reload may change
// (the format needs a restart).
func newLogger(w io.Writer, lc config.Logging, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisLog sends go-redis's own messages (a dial that failed, a pool
// event) to the gateway's log at debug level: what they report is
// already logged once per failure streak, and counted, by the cache and
// the limiter.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug(fmt.Sprintf(format, v...), "from", "go-redis")
	}
}
