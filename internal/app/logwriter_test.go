package app

import (
	"strings"
	"testing"
	"time"
)

// TestLogWriter: lines come out whole and in order, within flushEvery,
// at once past flushBytes, and on Close; after Close, straight through.
func TestLogWriter(t *testing.T) {
	out := &syncBuffer{}
	w := newLogWriter(out)
	w.Write([]byte("one\n"))
	w.Write([]byte("two\n"))
	if out.String() != "" {
		t.Fatalf("written before the flush: %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.String(); got != "one\ntwo\n" {
		t.Fatalf("after the flush interval: %q", got)
	}

	big := strings.Repeat("x", flushBytes-4) + "\n"
	w.Write([]byte("three\n"))
	w.Write([]byte(big)) // does not fit with "three": "three" goes first
	if got := out.String(); got != "one\ntwo\nthree\n" {
		t.Fatalf("a full batch was not written at once: %q", got[:min(len(got), 40)])
	}
	huge := strings.Repeat("y", flushBytes+1) + "\n"
	w.Write([]byte(huge)) // flushes big, then goes straight through
	if got := out.String(); got != "one\ntwo\nthree\n"+big+huge {
		t.Fatalf("a line past the batch size: %d bytes out", len(got))
	}
	w.Write([]byte("four\n"))
	w.Close()
	if !strings.HasSuffix(out.String(), huge+"four\n") {
		t.Fatal("Close did not write the queued line")
	}
	w.Write([]byte("five\n"))
	if !strings.HasSuffix(out.String(), "four\nfive\n") {
		t.Fatal("a write after Close was held")
	}
}
