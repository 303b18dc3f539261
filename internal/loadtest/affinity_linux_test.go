package loadtest

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestStartPinnedChildInheritsMask(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after cpuSet
	if err := getAffinity(&before); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sleep, "30")
	if err := startPinned(cmd, []int{0}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := getAffinity(&after); err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("calling thread's mask changed: %x -> %x", before[0], after[0])
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Cpus_allowed_list:\t0\n") {
		t.Errorf("child not pinned to CPU 0: %s", grepLine(string(b), "Cpus_allowed_list"))
	}
	if _, err := maskOf([]int{1 << 20}); err == nil {
		t.Error("maskOf(huge cpu): want an error")
	}
}
