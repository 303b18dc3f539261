package loadtest

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm with spaces and parentheses, as a process may name itself.
	line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 7 0 12345 1000000 500 18446744073709551615\n"
	cpu, threads, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 3250*time.Millisecond || threads != 7 {
		t.Errorf("got cpu %v threads %d, want 3.25s and 7", cpu, threads)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 1 0 0 20 0 1 0"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): want an error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 1024<<10 || hwm != 2048<<10 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	if _, _, err := parseStatus([]byte("Name:\tkthreadd\nThreads:\t1\n")); err == nil {
		t.Error("status without VmRSS: want an error")
	}
	if _, _, err := parseStatus([]byte("VmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("bad unit: want an error")
	}
}

func TestReadProcSelf(t *testing.T) {
	needProc(t)
	a, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS <= 0 || a.PeakRSS < a.RSS || a.Threads < 1 {
		t.Errorf("implausible sample %+v", a)
	}
	// Burn CPU until the tick counter moves: CPU time never goes backwards
	// and eventually advances (no timing bound asserted).
	var b ProcSample
	for x := 0; ; x++ {
		if b, err = ReadProc(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if b.CPU > a.CPU {
			break
		}
		if b.CPU < a.CPU {
			t.Fatalf("CPU went backwards: %v then %v", a.CPU, b.CPU)
		}
		for i := range 1_000_000 {
			x ^= i
		}
	}
	// The owner may reset its own peak; VmHWM then restarts from VmRSS.
	if err := ResetPeakRSS(os.Getpid()); err != nil {
		t.Errorf("ResetPeakRSS(self): %v", err)
	}
	if c, err := ReadProc(os.Getpid()); err != nil || c.PeakRSS < c.RSS {
		t.Errorf("after reset: %+v, %v", c, err)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Error("ReadProc(-1): want an error")
	}
}

func grepLine(s, key string) string {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, key) {
			return l
		}
	}
	return ""
}
