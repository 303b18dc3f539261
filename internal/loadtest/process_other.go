//go:build !unix

package loadtest

import (
	"os"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

// terminate has no graceful signal to send here: it kills.
func terminate(p *os.Process) error { return p.Kill() }

func killGroup(p *os.Process) { _ = p.Kill() }
