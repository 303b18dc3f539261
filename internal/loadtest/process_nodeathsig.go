//go:build unix && !linux

package loadtest

import "syscall"

// setDeathSignal: no parent-death signal outside Linux; the children are
// still stopped by Stop and by the context.
func setDeathSignal(*syscall.SysProcAttr) {}
