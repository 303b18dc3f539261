package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omnigate/omnigate/internal/jobs"
)

// helperEnv tells the test binary, run again by TestCrash, to be the
// gateway that dies: "KIND ARG", ARG the embedded store's directory or
// the shared store's prefix.
const helperEnv = "OMNIGATE_JOBS_CRASH_HELPER"

const crashLease = time.Second

// TestHelperProcess is the gateway TestCrash kills: it takes a task and
// works on it, extending its lease, until it is killed.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("the process TestCrash starts and kills")
	}
	kind, arg, _ := strings.Cut(spec, " ")
	ctx := context.Background()
	var b *jobs.Backend
	var err error
	switch kind {
	case "embedded":
		b, err = OpenEmbedded(arg, crashLease)
	case "redis":
		b, err = OpenRedis(ctx, RedisOptions{Addr: redisAddr(), Prefix: arg}, crashLease)
	case "nats":
		b, err = OpenNATS(ctx, NATSOptions{URL: natsURL(), Prefix: arg}, crashLease)
	default:
		err = fmt.Errorf("no backend %q", kind)
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	d, err := b.Queue.Take(ctx, 10*time.Second)
	if err != nil || d == nil {
		fmt.Println("error taking:", d, err)
		os.Exit(1)
	}
	fmt.Printf("taken %s %d\n", d.Task(), d.Attempt())
	// A live worker: it keeps the lease, so that only its death frees the
	// task. Bounded, should the parent fail to kill it.
	for range int(time.Minute / (crashLease / 3)) {
		time.Sleep(crashLease / 3)
		if err := d.Extend(ctx); err != nil {
			fmt.Println("error extending:", err)
			os.Exit(1)
		}
	}
	os.Exit(2)
}

// startHelper runs TestHelperProcess as a process of its own and waits
// until it has taken a task; it returns the process and the task line.
func startHelper(t *testing.T, spec string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if l := s.Text(); strings.HasPrefix(l, "taken ") || strings.HasPrefix(l, "error") {
				lines <- l
				return
			}
		}
		lines <- "exited: " + s.Err().Error()
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "taken ") {
			t.Fatalf("helper: %s\n%s", l, stderr.String())
		}
		return cmd, l
	case <-time.After(15 * time.Second):
		t.Fatalf("helper took no task in 15s\n%s", stderr.String())
	}
	return nil, ""
}

// kill SIGKILLs the helper: no Close, no Ack, no word to the store.
func kill(t *testing.T, cmd *exec.Cmd) time.Time {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return time.Now()
}

// TestCrash kills a gateway holding a task (a real process, SIGKILLed)
// and shows another takes the task after the lease, as attempt 2.
func TestCrash(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		b, err := OpenEmbedded(dir, crashLease)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Queue.Push(context.Background(), "job/crash"); err != nil {
			t.Fatal(err)
		}
		b.Close()
		cmd, line := startHelper(t, "embedded "+dir)
		if line != "taken job/crash 1" {
			t.Fatalf("helper: %q", line)
		}
		// The file is the helper's while it lives: another opener fails
		// soon, saying which file.
		start := time.Now()
		if b, err := OpenEmbedded(dir, crashLease); err == nil {
			b.Close()
			t.Fatal("opened the store another process holds")
		} else if path := filepath.Join(dir, "jobs.db"); !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
		if e := time.Since(start); e > 2*time.Second {
			t.Errorf("a second opener waited %s", e)
		}
		killed := kill(t, cmd)
		// The gateway restarts: the lock died with the process.
		b, err = OpenEmbedded(dir, crashLease)
		if err != nil {
			t.Fatalf("reopening after the crash: %v", err)
		}
		defer b.Close()
		d := take(t, b.Queue, 3*crashLease)
		if d.Task() != "job/crash" || d.Attempt() != 2 {
			t.Errorf("after the crash: %q attempt %d, want job/crash attempt 2", d.Task(), d.Attempt())
		}
		t.Logf("taken again %s after the kill", time.Since(killed).Round(time.Millisecond))
		ack(t, d)
	})
	shared := []struct {
		name string
		open func(t *testing.T, prefix string, lease time.Duration) rig
	}{
		{"redis", redisRigOn},
		{"nats", natsRigOn},
	}
	for _, s := range shared {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			prefix := testPrefix(t)
			r := s.open(t, prefix, crashLease)
			q := r.b.Queue
			if err := q.Push(context.Background(), "job/crash"); err != nil {
				t.Fatal(err)
			}
			cmd, line := startHelper(t, s.name+" "+prefix)
			if line != "taken job/crash 1" {
				t.Fatalf("helper: %q", line)
			}
			// While the helper lives and extends, the task stays its own.
			none(t, q, 3*crashLease/2)
			killed := kill(t, cmd)
			d := take(t, q, 3*crashLease)
			if d.Task() != "job/crash" || d.Attempt() != 2 {
				t.Errorf("after the crash: %q attempt %d, want job/crash attempt 2", d.Task(), d.Attempt())
			}
			t.Logf("taken again %s after the kill", time.Since(killed).Round(time.Millisecond))
			ack(t, d)
			none(t, q, 0)
		})
	}
}
