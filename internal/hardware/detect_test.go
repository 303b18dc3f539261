package hardware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*/machine.golden.json and text.golden.txt")

// recorded names the file in a testdata case that holds a command's
// standard output; <file>.exit, when present, holds its exit status.
var recorded = map[string]string{
	"nvidia-smi --query-gpu=" + nvidiaFields + " " + nvidiaFormat:      "nvidia-smi-query.csv",
	"nvidia-smi --query-gpu=" + nvidiaFieldsNoCap + " " + nvidiaFormat: "nvidia-smi-query-nocap.csv",
	"nvidia-smi":         "nvidia-smi.txt",
	"nvidia-smi -q":      "nvidia-smi-q.txt",
	"nvidia-smi topo -m": "nvidia-smi-topo.txt",
	"rocm-smi --showproductname --showmeminfo vram --json": "rocm-smi.json",
}

// replay is a Runner that answers from a testdata case: a tool none of
// whose outputs the case holds is not on PATH. ran collects the command
// lines asked for.
func replay(t *testing.T, dir string, ran *[]string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		line := strings.Join(append([]string{name}, args...), " ")
		*ran = append(*ran, line)
		if tool, _ := filepath.Glob(filepath.Join(dir, name+"*")); len(tool) == 0 {
			return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		file, ok := recorded[line]
		if !ok {
			t.Errorf("unexpected command %q", line)
			return nil, errors.New("not recorded")
		}
		out, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Errorf("%q: %v", line, err)
			return nil, errors.New("not recorded")
		}
		if code, err := os.ReadFile(filepath.Join(dir, file+".exit")); err == nil {
			return out, fmt.Errorf("exit status %s", strings.TrimSpace(string(code)))
		}
		return out, nil
	}
}

// TestDetectGolden runs Detect on every testdata case's recorded outputs
// and compares the Machine as JSON with machine.golden.json, and
// WriteText's output with text.golden.txt.
func TestDetectGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var ran []string
			m := Detect(context.Background(), replay(t, dir, &ran))
			js, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			if err := WriteText(&text, m); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "machine.golden.json"), append(js, '\n'))
			golden(t, filepath.Join(dir, "text.golden.txt"), text.Bytes())
		})
	}
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", file, diff)
	}
}

// TestDetectRules pins what the golden files show by example, so a wrong
// -update cannot bless a regression.
func TestDetectRules(t *testing.T) {
	detect := func(t *testing.T, name string) (Machine, []string) {
		var ran []string
		return Detect(context.Background(), replay(t, filepath.Join("testdata", name), &ran)), ran
	}
	t.Run("NVLink on every pair", func(t *testing.T) {
		for name, links := range map[string][]string{"h100-sxm-x8": {"NV18"}, "a100-sxm4-80gb-x8": {"NV12"}, "v100-driver470": {"NV2"}} {
			m, _ := detect(t, name)
			if m.Interconnect != NVLink || !cmp.Equal(m.Links, links) {
				t.Errorf("%s: %q %q, want nvlink %q", name, m.Interconnect, m.Links, links)
			}
		}
	})
	t.Run("PCIe box", func(t *testing.T) {
		m, _ := detect(t, "rtx4090-x2")
		if m.Interconnect != PCIe || len(m.GPUs) != 2 {
			t.Errorf("%+v", m)
		}
	})
	t.Run("one GPU asks no topology", func(t *testing.T) {
		for _, name := range []string{"l4", "rtx4090"} {
			m, ran := detect(t, name)
			if m.Interconnect != None || len(m.GPUs) != 1 || strings.Contains(strings.Join(ran, "\n"), "topo") {
				t.Errorf("%s: %q, ran %q", name, m.Interconnect, ran)
			}
		}
	})
	t.Run("old driver: retried without compute_cap, capability from the name", func(t *testing.T) {
		m, ran := detect(t, "v100-driver470")
		if len(ran) < 2 || !strings.Contains(ran[1], nvidiaFieldsNoCap) {
			t.Errorf("ran %q", ran)
		}
		for _, g := range m.GPUs {
			if g.ComputeCapability != "7.0" || g.Generation != Volta {
				t.Errorf("%+v", g)
			}
		}
		if m.CUDA != "11.4" || m.Driver != "470.182.03" || len(m.Notes) != 1 {
			t.Errorf("%+v", m)
		}
	})
	t.Run("memory in bytes", func(t *testing.T) {
		m, _ := detect(t, "h100-sxm-x8")
		if g := m.GPUs[4]; g.MemoryTotal != 81559*mib || g.MemoryFree != 16534*mib {
			t.Errorf("%+v", g)
		}
		m, _ = detect(t, "mi300x-x8")
		if g := m.GPUs[4]; g.MemoryTotal != 205822885888 || g.MemoryFree != 205822885888-27883429888 || g.Generation != CDNA3 {
			t.Errorf("%+v", g)
		}
	})
	t.Run("AMD only when NVIDIA has nothing", func(t *testing.T) {
		_, ran := detect(t, "l4")
		if strings.Contains(strings.Join(ran, "\n"), "rocm-smi") {
			t.Errorf("ran %q", ran)
		}
	})
	t.Run("no GPU is a reason, not an error", func(t *testing.T) {
		for name, reason := range map[string]string{
			"none-missing":       "nvidia-smi is not on PATH; rocm-smi is not on PATH",
			"none-no-devices":    "nvidia-smi: No devices were found; rocm-smi is not on PATH",
			"none-driver-failed": "nvidia-smi: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.; rocm-smi is not on PATH",
		} {
			m, _ := detect(t, name)
			if m.Reason != reason || m.GPUs == nil || len(m.GPUs) != 0 {
				t.Errorf("%s: %+v, want reason %q", name, m, reason)
			}
		}
	})
}

// fake answers commands from a map of command line to output; "!N"
// before the output makes it fail with exit status N.
func fake(answers map[string]string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		line := strings.Join(append([]string{name}, args...), " ")
		a, ok := answers[line]
		if !ok {
			return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		if code, rest, found := strings.Cut(a, "!"); found && code == "" {
			n, out, _ := strings.Cut(rest, " ")
			if _, err := strconv.Atoi(n); err == nil {
				return []byte(out), fmt.Errorf("exit status %s", n)
			}
		}
		return []byte(a), nil
	}
}

func TestDetectNVIDIAFailures(t *testing.T) {
	query := "nvidia-smi --query-gpu=" + nvidiaFields + " " + nvidiaFormat
	noCap := "nvidia-smi --query-gpu=" + nvidiaFieldsNoCap + " " + nvidiaFormat
	twoH100 := "0, NVIDIA H100 80GB HBM3, GPU-a, 81559, 81000, 9.0, 550.54.15\n1, NVIDIA H100 80GB HBM3, GPU-b, 81559, 81000, 9.0, 550.54.15\n"
	tests := []struct {
		name       string
		answers    map[string]string
		wantGPUs   int
		wantReason string
		wantCUDA   string
		wantIC     Interconnect
		wantNotes  []string
	}{
		{name: "CUDA from nvidia-smi -q", wantGPUs: 2, wantCUDA: "12.4", wantIC: NVLink,
			answers: map[string]string{query: twoH100, "nvidia-smi": "!9 ", "nvidia-smi -q": "Driver Version : 550.54.15\nCUDA Version : 12.4\n",
				"nvidia-smi topo -m": "\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV18\t X \n"}},
		{name: "CUDA unknown, topology fails", wantGPUs: 2, wantIC: None,
			answers: map[string]string{query: twoH100, "nvidia-smi": "CUDA Version: N/A\n", "nvidia-smi -q": "!9 ",
				"nvidia-smi topo -m": "!3 Failed to get topology\n"},
			wantNotes: []string{"CUDA version unknown: nvidia-smi: no CUDA Version in its output",
				"interconnect unknown: nvidia-smi topo -m: Failed to get topology"}},
		{name: "topology of other GPUs", wantGPUs: 2, wantCUDA: "12.4", wantIC: None,
			answers: map[string]string{query: twoH100, "nvidia-smi": "CUDA Version: 12.4",
				"nvidia-smi topo -m": "\tGPU0\nGPU0\t X \n"},
			wantNotes: []string{"interconnect unknown: nvidia-smi topo -m: shows 1 GPU columns and 1 rows; --query-gpu listed 2 GPUs"}},
		{name: "garbage CSV", wantReason: "nvidia-smi --query-gpu: line 1: 1 fields, want 7: \"what\"; rocm-smi is not on PATH",
			answers: map[string]string{query: "what\n"}},
		{name: "empty CSV", wantReason: "nvidia-smi lists no GPU; rocm-smi is not on PATH",
			answers: map[string]string{query: "\n"}},
		{name: "no devices, exit 0", wantReason: "nvidia-smi: No devices were found; rocm-smi is not on PATH",
			answers: map[string]string{query: "No devices were found\n"}},
		{name: "retry fails too", wantReason: "nvidia-smi: exit status 9; rocm-smi is not on PATH",
			answers: map[string]string{query: "!2 Field \"compute_cap\" is not a valid field to query.\n", noCap: "!9 "}},
		{name: "unknown GPU on an old driver", wantGPUs: 1, wantCUDA: "11.4",
			answers: map[string]string{query: "!2 Field \"compute_cap\" is not a valid field to query.\n",
				noCap: "0, Tesla P100-PCIE-16GB, GPU-p, 16280, 16277, 470.182.03\n", "nvidia-smi": "CUDA Version: 11.4 "},
			wantNotes: []string{"this nvidia-smi does not report compute_cap: compute capability from the GPU's name",
				"GPU 0 (Tesla P100-PCIE-16GB): generation unknown"}},
		{name: "[N/A] fields", wantGPUs: 1, wantCUDA: "12.4",
			answers: map[string]string{query: "0, NVIDIA A100-SXM4-40GB, [N/A], 40960, [N/A], [N/A], 550.54.15\n", "nvidia-smi": "CUDA Version: 12.4"}},
		{name: "rocm-smi without cards", wantReason: "nvidia-smi is not on PATH; rocm-smi lists no GPU",
			answers: map[string]string{"rocm-smi --showproductname --showmeminfo vram --json": "WARNING: no GPU\n{\"system\": {\"Driver version\": \"6.8.5\"}}\n"}},
		{name: "rocm-smi fails", wantReason: "nvidia-smi is not on PATH; rocm-smi: ERROR:root:Driver not initialized (amdgpu not found in modules)",
			answers: map[string]string{"rocm-smi --showproductname --showmeminfo vram --json": "!1 ERROR:root:Driver not initialized (amdgpu not found in modules)\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Detect(context.Background(), fake(tt.answers))
			got := []any{len(m.GPUs), m.Reason, m.CUDA, m.Interconnect, m.Notes}
			want := []any{tt.wantGPUs, tt.wantReason, tt.wantCUDA, tt.wantIC, tt.wantNotes}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTopology(t *testing.T) {
	tests := []struct {
		name    string
		topo    string
		n       int
		want    Interconnect
		links   []string
		wantErr string
	}{
		{name: "bridged pair", n: 2, want: NVLink, links: []string{"NV4"},
			topo: "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tNV4\t0-15\t0\nGPU1\tNV4\t X \t0-15\t0\n"},
		{name: "two bridged pairs", n: 4, want: PCIe, links: []string{"NV4", "PHB", "SYS"},
			topo: "\tGPU0\tGPU1\tGPU2\tGPU3\nGPU0\t X \tNV4\tSYS\tSYS\nGPU1\tNV4\t X \tSYS\tPHB\nGPU2\tSYS\tSYS\t X \tNV4\nGPU3\tSYS\tPHB\tNV4\t X \n"},
		{name: "mixed bonds", n: 3, want: NVLink, links: []string{"NV2", "NV1"},
			topo: "\tGPU0\tGPU1\tGPU2\nGPU0\t X \tNV1\tNV2\nGPU1\tNV1\t X \tNV1\nGPU2\tNV2\tNV1\t X \n"},
		{name: "old SOC", n: 2, want: PCIe, links: []string{"SOC"},
			topo: "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tSOC\t0-7\nGPU1\tSOC\t X \t8-15\n"},
		{name: "aligned with spaces", n: 2, want: PCIe, links: []string{"PIX"},
			topo: "        GPU0    GPU1    CPU Affinity\nGPU0     X      PIX     0-7\nGPU1    PIX      X      0-7\n"},
		{name: "unknown cell", n: 2, wantErr: `GPU0 to GPU1 is "??"`,
			topo: "\tGPU0\tGPU1\nGPU0\t X \t??\nGPU1\t??\t X \n"},
		{name: "short row", n: 2, wantErr: "row GPU1 has 1 columns, want 2",
			topo: "\tGPU0\tGPU1\nGPU0\t X \tNV1\nGPU1\tNV1\n"},
		{name: "empty", n: 2, wantErr: "shows 0 GPU columns and 0 rows; --query-gpu listed 2 GPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic, links, err := parseTopology([]byte(tt.topo), tt.n)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ic != tt.want || !cmp.Equal(links, tt.links) {
				t.Errorf("%q %q, want %q %q", ic, links, tt.want, tt.links)
			}
		})
	}
}

func TestExec(t *testing.T) {
	ctx := context.Background()
	out, err := Exec(ctx, "sh", "-c", "echo out; echo oops >&2; exit 3")
	if string(out) != "out\n" || err == nil || err.Error() != "exit status 3: oops" {
		t.Errorf("%q, %v", out, err)
	}
	if _, err := Exec(ctx, "omnigate-no-such-tool"); !notFound(err) {
		t.Errorf("missing tool: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Exec(ctx, "sleep", "10"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("cancelled: %v after %v", err, time.Since(start))
	}
}
