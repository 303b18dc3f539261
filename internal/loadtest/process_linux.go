package loadtest

import "syscall"

// setDeathSignal makes the kernel kill the child when the harness dies.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
