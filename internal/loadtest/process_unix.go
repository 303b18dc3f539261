//go:build unix

package loadtest

import (
	"os"
	"syscall"
)

// childAttr puts a child in its own process group, so Stop can kill all of
// it (and, on Linux, kills it with the harness: see process_linux.go).
func childAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(a)
	return a
}

// terminate asks a child to shut down gracefully.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// killGroup kills a child and whatever it started.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
