package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/hardware"
)

// updateGolden rewrites this package's golden files (testdata/plan, testdata/eval).
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestPlanGolden runs `omnigate plan` through Main and compares stdout
// with testdata/plan/<name>.golden byte for byte; -update rewrites them.
func TestPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"30b-4xh100-tp4", []string{"--model", "qwen3-omni-30b", "--gpu", "H100-80GB", "--count", "4", "--tp", "4"}, 0},
		{"30b-4xh100-min", []string{"--model", "Qwen/Qwen3-Omni-30B-A3B-Instruct", "--gpu", "H100-80GB", "--count", "4"}, 0},
		{"7b-h100", []string{"--model", "qwen3-omni-7b", "--gpu", "H100-80GB"}, 0},
		{"7b-l4-fp8-kv", []string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--context", "4096"}, 0},
		{"30b-4xl4-video", []string{"--model", "qwen3-omni-30b", "--gpu", "L4", "--count", "4", "--video-seconds", "60"}, 0},
		{"30b-a100-awq", []string{"--model", "qwen3-omni-30b", "--gpu", "A100-80GB", "--count", "2", "--dtype", "awq", "--context", "32768"}, 0},
		{"30b-2xh100-sglang", []string{"--model", "qwen3-omni-30b", "--gpu", "H100-80GB", "--count", "2", "--engine", "sglang", "--images", "4"}, 0},
		{"30b-transformers-60s", []string{"--model", "qwen3-omni-30b", "--gpu", "H100-80GB", "--count", "2", "--engine", "transformers", "--video-seconds", "60"}, 0},
		{"7b-transformers-15s", []string{"--model", "Qwen/Qwen2.5-Omni-7B", "--gpu", "A100-40GB", "--engine", "transformers", "--video-seconds", "15"}, 0},
		{"30b-l4-no-fit", []string{"--model", "qwen3-omni-30b", "--gpu", "L4", "--dtype", "bf16"}, 1},
		{"config-json-moe", []string{"--config-json", "../plan/testdata/qwen3_30b_a3b.config.json", "--model", "Qwen/Qwen3-30B-A3B", "--gpu", "A100-80GB"}, 0},
		{"7b-l4-json", []string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--context", "4096", "--json"}, 0},
		{"fleet-example", []string{"--fleet", "../../examples/fleet/inventory.yaml"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"plan"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr.String())
			}
			golden := filepath.Join("testdata", "plan", tt.name+".golden")
			if *updateGolden {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestPlanFleetConfigServes: the gateway config omnigate plan --fleet
// writes for the example inventory loads and validates as serve loads it,
// and its deployments say what they run on.
func TestPlanFleetConfigServes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "omnigate.yaml")
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"plan", "--fleet", "../../examples/fleet/inventory.yaml", "--config-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("%v", ps)
	}
	var names []string
	for _, m := range cfg.Models {
		for _, d := range m.Deployments {
			names = append(names, m.Name+"/"+d.Name+"/"+d.Hardware.GPU+"/"+d.Quantization)
		}
	}
	want := []string{"qwen3-omni-7b/l4-1-8000/L4/fp8", "qwen3-omni-7b/l4-2-8000/L4/fp8",
		"qwen3-omni-30b/hopper-1-8000/H100-80GB/bf16", "qwen3-omni-30b/hopper-2-8000/H100-80GB/bf16"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("deployments (-want +got):\n%s", diff)
	}
	if !strings.Contains(stdout.String(), "gateway config written to "+out) || !strings.Contains(stdout.String(), "CUDA_VISIBLE_DEVICES=0,1,2,3 vllm serve Qwen/Qwen3-Omni-30B-A3B-Instruct --tensor-parallel-size 4") {
		t.Errorf("the plan's output:\n%s", stdout.String())
	}
}

// TestPlanRules pins what the golden files show by example, so a wrong
// -update cannot bless a regression.
func TestPlanRules(t *testing.T) {
	defer stubDetect(hardware.Machine{GPUs: []hardware.GPU{}, Reason: "no nvidia-smi; no rocm-smi"})()
	run := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), append([]string{"plan"}, args...), &stdout, &stderr)
		return stdout.String(), stderr.String(), code
	}
	out, _, _ := run("--model", "qwen3-omni-30b", "--gpu", "H100-80GB", "--count", "4", "--tp", "4")
	for _, want := range []string{
		"fits: tensor parallel 4, bf16 weights, bf16 KV cache",
		"vllm serve Qwen/Qwen3-Omni-30B-A3B-Instruct --tensor-parallel-size 4 --max-model-len 65536 --gpu-memory-utilization 0.9 --max-num-seqs 256",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run("--model", "qwen3-omni-7b", "--gpu", "L4", "--context", "4096", "--json")
	var p struct {
		Fits           bool    `json:"fits"`
		MinGPUMemoryGB float64 `json:"min_gpu_memory_gb"`
		KV             string  `json:"kv_cache_dtype"`
		Command        string  `json:"command"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || !p.Fits || p.MinGPUMemoryGB <= 0 || p.KV != "fp8" || !strings.Contains(p.Command, "--kv-cache-dtype fp8") {
		t.Errorf("json: %+v, %v", p, err)
	}
	// The table's first row (78.85 GB official): 79.61 planned, just
	// inside one H100's 79.65 GiB.
	out, _, code := run("--model", "qwen3-omni-30b", "--gpu", "H100-80GB", "--engine", "transformers", "--video-seconds", "15")
	if code != 0 || !strings.Contains(out, "min GPU memory: 79.61 GiB in all") {
		t.Errorf("transformers: %s", out)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model", "qwen3-omni-7b"}, 1, "no GPU found (no nvidia-smi; no rocm-smi); name the GPU model with --gpu"},
		{[]string{"--gpu", "H100-80GB"}, 1, "--model is required"},
		{[]string{"--model", "qwen3-omni-7b", "--gpu", "TPU"}, 1, `unknown GPU "TPU"`},
		{[]string{"--model", "llama", "--gpu", "L4"}, 1, `unknown model "llama"`},
		{[]string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--video-size", "big"}, 1, "WIDTHxHEIGHT"},
		{[]string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--interconnect", "wifi"}, 1, "nvlink or pcie"},
		{[]string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--engine", "tgi"}, 1, "unknown engine"},
		{[]string{"--config-json", "x.json", "--gpu", "L4"}, 1, "--config-json needs --model"},
		{[]string{"--model", "qwen3-omni-7b", "--gpu", "L4", "--context", "99999"}, 1, "takes at most 32768"},
		{[]string{"--model", "qwen3-omni-30b", "--gpu", "L4", "--dtype", "bf16"}, 1, "does not fit"},
		{[]string{"--bogus"}, 2, ""},
		{[]string{"extra"}, 2, "unexpected argument"},
	} {
		_, stderr, code := run(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want %d, %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// stubDetect makes detection find m until the returned func restores it.
func stubDetect(m hardware.Machine) func() {
	old := planDetect
	planDetect = func(context.Context) hardware.Machine { return m }
	return func() { planDetect = old }
}

// TestPlanDetected plans for the GPUs detection finds when --gpu is not
// given: all of them, linked as detected, unless flags say otherwise.
func TestPlanDetected(t *testing.T) {
	l4 := hardware.GPU{Vendor: "nvidia", Name: "NVIDIA L4", MemoryTotal: 23034 << 20, ComputeCapability: "8.9", Generation: hardware.Ada}
	defer stubDetect(hardware.Machine{GPUs: []hardware.GPU{l4, l4, l4, l4}, Interconnect: hardware.PCIe, Source: "nvidia-smi"})()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"plan", "--model", "qwen3-omni-30b", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var p struct {
		GPU struct {
			Name        string `json:"name"`
			MemoryBytes int64  `json:"memory_bytes"`
		} `json:"gpu"`
		Count        int    `json:"count"`
		Interconnect string `json:"interconnect"`
		TP           int    `json:"tensor_parallel_size"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.GPU.Name != "L4" || p.GPU.MemoryBytes != 23034<<20 || p.Count != 4 || p.Interconnect != "pcie" || p.TP != 4 {
		t.Errorf("%+v", p)
	}
	if want := "omnigate plan: detected 4× L4 (22.49 GiB) through nvidia-smi\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"plan", "--model", "qwen3-omni-7b", "--count", "1", "--json"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), `"count": 1`) {
		t.Errorf("--count 1 over detection: exit %d, %s", code, stdout.String())
	}
}

// TestPlanDocExamples keeps docs/planning.md's examples equal to the
// golden files they were copied from.
func TestPlanDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/planning.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"30b-4xh100-tp4", "7b-l4-fp8-kv", "30b-4xl4-video", "30b-transformers-60s"} {
		b, err := os.ReadFile(filepath.Join("testdata", "plan", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), string(b)) {
			t.Errorf("docs/planning.md's example differs from testdata/plan/%s.golden; copy it over", name)
		}
	}
}

// TestPlanConfigNames: with --config, --model takes the gateway config's
// public names and aliases, planned as their deployments' upstream model.
func TestPlanConfigNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "omnigate.yaml")
	os.WriteFile(path, []byte(`models:
  - name: support-fast
    aliases: [fast]
    deployments: [{name: gpu-a, kind: openai, url: "http://10.0.0.1:8000/v1", upstream_model: Qwen/Qwen2.5-Omni-7B}]
  - name: mystery
    deployments: [{name: gpu-b, kind: openai, url: "http://10.0.0.2:8000/v1", upstream_model: acme/secret-model}]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"plan", "--config", path, "--model", "fast", "--gpu", "L4"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "Qwen/Qwen2.5-Omni-7B on 1× L4") {
		t.Errorf("alias fast planned as:\n%s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := Main(context.Background(), []string{"plan", "--config", path, "--model", "mystery", "--gpu", "L4"}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "acme/secret-model") {
		t.Errorf("a model the planner cannot know: exit %d, %s", code, stderr.String())
	}
}
