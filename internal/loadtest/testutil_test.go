package loadtest

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// syncWriter serialises writes from the progress goroutine and the runner.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// cancelOnWrite cancels a context at the first progress line mentioning after.
type cancelOnWrite struct {
	cancel context.CancelFunc
	after  string
	once   sync.Once
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.after) {
		c.once.Do(c.cancel)
	}
	return len(p), nil
}

// needProc skips a test that reads /proc, which only Linux has.
func needProc(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc: Linux only")
	}
}
