package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/hardware"
)

// l4 answers like a machine with one L4; it has no rocm-smi.
func l4(ctx context.Context, name string, args ...string) ([]byte, error) {
	switch line := strings.Join(append([]string{name}, args...), " "); {
	case strings.HasPrefix(line, "nvidia-smi --query-gpu="):
		return []byte("0, NVIDIA L4, GPU-e1b4c9d2, 23034, 22563, 8.9, 550.90.07\n"), nil
	case line == "nvidia-smi":
		return []byte("| NVIDIA-SMI 550.90.07              Driver Version: 550.90.07      CUDA Version: 12.4     |\n"), nil
	}
	return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func TestHW(t *testing.T) {
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if err := hw(ctx, nil, &stdout, &stderr, l4); err != nil {
		t.Fatal(err)
	}
	want := `GPU  NAME       MEMORY    FREE      COMPUTE  GENERATION
0    NVIDIA L4  22.5 GiB  22.0 GiB  8.9      Ada
interconnect: none (one GPU)
driver: 550.90.07
cuda: 12.4
supports: fp8, bf16, fp8 kv cache, int4 (marlin)
lacks: none
attention: flash-attn-2
source: nvidia-smi
`
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}

	stdout.Reset()
	if err := hw(ctx, []string{"--json"}, &stdout, &stderr, l4); err != nil {
		t.Fatal(err)
	}
	var m hardware.Machine
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, stdout.Bytes())
	}
	if diff := cmp.Diff(hardware.Detect(ctx, l4), m); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}

	stdout.Reset()
	if err := hw(ctx, []string{"--catalog", "--json"}, &stdout, &stderr, l4); err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Name     string            `json:"name"`
		Supports hardware.Supports `json:"supports"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &list); err != nil || len(list) != len(hardware.Models()) {
		t.Fatalf("catalog: %d models, %v", len(list), err)
	}
	for _, e := range list {
		md, ok := hardware.Lookup(e.Name)
		if !ok || e.Supports != md.Supports() {
			t.Errorf("catalog entry %+v", e)
		}
	}
}

// TestHWMain runs the real detection here: with or without a GPU, hw
// exits 0.
func TestHWMain(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"hw"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.HasPrefix(out, "no GPU found: ") && !strings.HasPrefix(out, "GPU  NAME") {
		t.Errorf("stdout %q", out)
	}
	if code := Main(context.Background(), []string{"hw", "--bogus"}, &stdout, &stderr); code != 2 {
		t.Errorf("a bad flag: exit %d", code)
	}
	if code := Main(context.Background(), []string{"hw", "extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("an argument: exit %d", code)
	}
}
