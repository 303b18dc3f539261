package loadtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuSet is a sched_setaffinity mask for up to 1024 CPUs.
type cpuSet [16]uint64

func maskOf(cpus []int) (cpuSet, error) {
	var m cpuSet
	for _, c := range cpus {
		if c < 0 || c >= len(m)*64 {
			return m, fmt.Errorf("cpu %d out of range", c)
		}
		if c >= runtime.NumCPU() {
			return m, fmt.Errorf("cpu %d: this machine has %d CPUs", c, runtime.NumCPU())
		}
		m[c/64] |= 1 << (c % 64)
	}
	return m, nil
}

// setAffinity pins one thread (tid 0: the calling thread).
func setAffinity(tid int, m *cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m)))
	if e != 0 {
		return fmt.Errorf("sched_setaffinity(%d): %w", tid, e)
	}
	return nil
}

func getAffinity(m *cpuSet) error {
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(*m), uintptr(unsafe.Pointer(m)))
	if e != 0 {
		return fmt.Errorf("sched_getaffinity: %w", e)
	}
	return nil
}

// startPinned starts cmd with its CPU affinity set to cpus (all CPUs when
// empty). The mask is set on the forking thread for the duration of Start,
// so the child inherits it before it runs a single instruction of its own —
// every thread it ever makes is pinned, with no race and no taskset.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) == 0 {
		return cmd.Start()
	}
	m, err := maskOf(cpus)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig cpuSet
	if err := getAffinity(&orig); err != nil {
		return err
	}
	if err := setAffinity(0, &m); err != nil {
		return err
	}
	startErr := cmd.Start()
	if err := setAffinity(0, &orig); err != nil && startErr == nil {
		return fmt.Errorf("restore affinity: %w", err)
	}
	return startErr
}

// PinSelf pins every thread of the current process to cpus and sets
// GOMAXPROCS to match; new threads inherit the mask of their creator.
func PinSelf(cpus []int) error {
	m, err := maskOf(cpus)
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(len(cpus))
	// Twice: a thread created while the first pass ran may have copied the old mask.
	for range 2 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin self: %w", err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := setAffinity(tid, &m); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err
			}
		}
	}
	return nil
}
