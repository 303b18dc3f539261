package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Process is a server child process started by the harness.
type Process struct {
	Name string
	URL  *url.URL // origin it serves on, from its "serving on" line
	// GRPC is a gateway's gRPC address, from its "gRPC on" line; "" when
	// it has none.
	GRPC string
	PID  int

	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
	err    error // set before done closes
}

// servingLine matches "… serving on http://ADDR" as printed by omnigate
// serve, omnigate sim and the bench helper modes.
var servingLine = regexp.MustCompile(`serving on (https?://\S+)`)

// grpcLine matches omnigate serve's "omnigate: gRPC on ADDR", printed
// before its "serving on" line.
var grpcLine = regexp.MustCompile(`omnigate: gRPC on (\S+)`)

// StartProcess runs bin with args, pinned to cpus when given, and waits up to
// timeout for its "serving on URL" line. The child dies with ctx, with Stop,
// and (Pdeathsig) with the harness itself.
func StartProcess(ctx context.Context, name, bin string, args []string, cpus []int, timeout time.Duration) (*Process, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = 3 * time.Second
	p := &Process{Name: name, cmd: cmd, stderr: &tailBuffer{max: 4 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := startPinned(cmd, cpus); err != nil {
		return nil, fmt.Errorf("start %s (%s %s): %w", name, bin, strings.Join(args, " "), err)
	}
	p.PID = cmd.Process.Pid
	found := make(chan [2]string, 1) // the serving URL, the gRPC address
	go func() {
		sc := bufio.NewScanner(out)
		grpcAddr := ""
		for sc.Scan() {
			if m := grpcLine.FindStringSubmatch(sc.Text()); m != nil {
				grpcAddr = m[1]
			}
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- [2]string{m[1], grpcAddr}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case lines := <-found:
		raw := lines[0]
		u, err := url.Parse(raw)
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("%s: bad serving URL %q: %w", name, raw, err)
		}
		p.URL, p.GRPC = &url.URL{Scheme: u.Scheme, Host: u.Host}, lines[1]
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before serving (%v); stderr: %s", name, p.err, p.stderr.String())
	case <-tm.C:
		p.Stop()
		return nil, fmt.Errorf("%s printed no \"serving on\" line within %s; stderr: %s", name, timeout, p.stderr.String())
	case <-ctx.Done():
		p.Stop()
		return nil, ctx.Err()
	}
}

// Stop sends SIGTERM, then SIGKILL to the process group after 3 s, and waits.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = terminate(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		killGroup(p.cmd.Process)
		<-p.done
	}
}

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns why the process ended, for error messages.
func (p *Process) Exited() error {
	if p.Alive() {
		return nil
	}
	if p.err == nil {
		return errors.New(p.Name + " exited")
	}
	return fmt.Errorf("%s exited: %w; stderr: %s", p.Name, p.err, p.stderr.String())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.mu.Unlock()
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
