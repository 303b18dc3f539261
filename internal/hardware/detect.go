package hardware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner runs a command and returns its standard output. A command not
// on PATH is an error wrapping exec.ErrNotFound; a non-zero exit is an
// error that carries the first line of standard error. Tests inject
// recorded outputs through it.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// CommandTimeout bounds each command Exec runs: nvidia-smi hangs when
// the driver is wedged.
const CommandTimeout = 5 * time.Second

// Exec is the Runner that runs real commands, each within CommandTimeout.
func Exec(parent context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(parent, CommandTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if err := parent.Err(); err != nil {
			return out, err
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("no answer within %v", CommandTimeout)
		}
		if line := firstLine(stderr.String()); line != "" {
			return out, fmt.Errorf("%w: %s", err, line)
		}
		return out, err
	}
	return out, nil
}

var _ Runner = Exec

// Detect finds the machine's GPUs: NVIDIA's through nvidia-smi, else
// AMD's through rocm-smi. It does not fail: a machine without GPUs, or
// whose tools fail, is a Machine without GPUs whose Reason says why, and
// what detection could not learn about found GPUs is in Notes.
func Detect(ctx context.Context, run Runner) Machine {
	m, nvReason := detectNVIDIA(ctx, run)
	if len(m.GPUs) > 0 {
		return m
	}
	m, amdReason := detectAMD(ctx, run)
	if len(m.GPUs) > 0 {
		return m
	}
	return Machine{GPUs: []GPU{}, Reason: nvReason + "; " + amdReason}
}

// notFound says whether err is "the command is not on PATH".
func notFound(err error) bool { return errors.Is(err, exec.ErrNotFound) }

// failure is what a failed command said: its output's first line, else
// the error.
func failure(out []byte, err error) string {
	if line := firstLine(string(out)); line != "" {
		return line
	}
	if err != nil {
		return err.Error()
	}
	return "no output"
}

// firstLine is s's first non-blank line, trimmed.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if t := strings.TrimSpace(line); t != "" {
			return t
		}
	}
	return ""
}
