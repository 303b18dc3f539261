package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100
// on every Linux architecture Go supports.
const clockTick = 100

// ProcSample is one reading of a process's resource use from /proc.
type ProcSample struct {
	CPU      time.Duration // utime + stime
	RSS      int64         // VmRSS, bytes
	PeakRSS  int64         // VmHWM, bytes
	Threads  int
	Captured time.Time
}

// ReadProc reads /proc/PID/stat and /proc/PID/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read proc stat: %w", err)
	}
	cpu, threads, err := parseStat(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read proc status: %w", err)
	}
	rss, hwm, err := parseStatus(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return ProcSample{CPU: cpu, RSS: rss, PeakRSS: hwm, Threads: threads, Captured: time.Now()}, nil
}

// ResetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0, writing "5" to
// clear_refs) so a phase's peak is its own. It fails without permission;
// callers fall back to sampling VmRSS.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// parseStat extracts utime+stime and num_threads from /proc/PID/stat. The
// command name is in parentheses and may hold spaces or ')', so fields are
// counted from the last ')'.
func parseStat(b []byte) (time.Duration, int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat: no ')' in %q", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
	if len(f) < 18 {
		return 0, 0, fmt.Errorf("proc stat: %d fields after comm, want ≥ 18", len(f))
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	th, err3 := strconv.Atoi(string(f[17]))
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, fmt.Errorf("proc stat: bad utime/stime/threads %q %q %q", f[11], f[12], f[17])
	}
	return time.Duration(ut+st) * (time.Second / clockTick), th, nil
}

// parseStatus extracts VmRSS and VmHWM (in bytes) from /proc/PID/status.
func parseStatus(b []byte) (rss, hwm int64, err error) {
	found := 0
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(val)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("proc status: bad %s line %q", key, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("proc status: %s: %w", key, err)
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("proc status: VmRSS/VmHWM missing (kernel thread or zombie?)")
	}
	return rss, hwm, nil
}
