//go:build !linux

package loadtest

import (
	"errors"
	"os/exec"
)

var errNoPinning = errors.New("pinning to CPUs (--pin) needs Linux")

// startPinned starts cmd; pinning is Linux-only.
func startPinned(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) > 0 {
		return errNoPinning
	}
	return cmd.Start()
}

// PinSelf pins the harness; Linux-only.
func PinSelf(cpus []int) error {
	if len(cpus) > 0 {
		return errNoPinning
	}
	return nil
}
