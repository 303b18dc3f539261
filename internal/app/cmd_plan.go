package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/hardware"
	"github.com/omnigate/omnigate/internal/plan"
)

// planHardware is where `omnigate plan` looks GPUs up.
var planHardware plan.Hardware = plan.Catalog{}

// planDetect finds the machine's GPUs when --gpu is not given.
var planDetect = func(ctx context.Context) hardware.Machine { return hardware.Detect(ctx, hardware.Exec) }

// errNoFit marks a plan that was printed but does not fit.
var errNoFit = errors.New("the model does not fit")

// runPlan is `omnigate plan`: what fits where, and the engine command.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", "--model MODEL --gpu GPU [--count N] [flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: omnigate plan --model MODEL --gpu GPU [--count N] [flags]

Plans serving MODEL on N GPUs: memory per GPU (weights, activations,
overhead, KV cache), the smallest tensor-parallel size that fits, the
longest context and how many sequences run at once, why (formats and
kernels per GPU generation), and the engine command. --engine transformers
plans one request the way Qwen's minimum-memory tables were measured.
Exits 1 when the model does not fit.

Without --gpu it detects the machine's GPUs (as omnigate hw does) and plans
for all of them.

Models: %s, or --config-json FILE (MODEL is then the id to serve).
GPUs: %s.

Flags:
`, strings.Join(plan.ModelNames(), ", "), strings.Join(plan.GPUNames(), ", "))
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "Hugging Face id or tier `name` (qwen3-omni-7b, qwen3-omni-30b)")
	configJSON := fs.String("config-json", "", "plan the model a Hugging Face config.json `file` describes")
	gpu := fs.String("gpu", "", "GPU `model`, such as H100-80GB (default: the machine's, detected)")
	count := fs.Int("count", 1, "GPUs available (default with detection: all found)")
	link := fs.String("interconnect", "", "how the GPUs connect: nvlink or pcie (default: the GPU model's usual, or as detected)")
	engine := fs.String("engine", "vllm", "vllm, sglang or transformers")
	dtype := fs.String("dtype", "auto", "weights: bf16, fp16, fp8, int8, awq, gptq, or auto (bf16, else the smallest that fits)")
	kvDType := fs.String("kv-dtype", "auto", "KV cache: auto (16-bit, else fp8 if only that fits) or fp8")
	util := fs.Float64("gpu-memory-utilization", plan.DefaultGPUMemoryUtilization, "share of each GPU the engine may use")
	contextLen := fs.Int("context", 0, "max_model_len wanted (default: the longest that fits, up to the model's)")
	tp := fs.Int("tp", 0, "force the tensor-parallel size")
	talker := fs.Bool("talker", false, "load the talker and vocoder too (vllm-omni, SGLang-Omni)")
	videoSeconds := fs.Float64("video-seconds", 0, "seconds of video in one request")
	videoSize := fs.String("video-size", "1280x720", "video frame `WxH`")
	videoAudio := fs.Bool("video-audio", true, "send the video's soundtrack too")
	audioSeconds := fs.Float64("audio-seconds", 0, "seconds of audio in one request")
	images := fs.Int("images", 0, "images in one request")
	imageSize := fs.String("image-size", "1280x720", "image `WxH`")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	gatewayConfig := fs.String("config", "", "a gateway config `file` whose model names (and aliases) --model may use: each names its deployments' upstream_model")
	fleet := fs.String("fleet", "", "plan a fleet: the inventory `file` (machines and their GPUs); prints where each tier runs, the engine commands and the gateway config")
	configOut := fs.String("config-out", "", "with --fleet, write the gateway config to `file` instead of printing it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *fleet != "" {
		return runFleet(*fleet, *configOut, *asJSON, stdout)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "omnigate plan: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *gatewayConfig != "" && *model != "" && *configJSON == "" {
		id, err := upstreamOf(*gatewayConfig, *model)
		if err != nil {
			return err
		}
		*model = id
	}
	req, err := planRequest(*model, *configJSON, *gpu, *count, *link)
	if err != nil {
		return err
	}
	if *gpu == "" {
		m := planDetect(ctx)
		g, n, l, ok := plan.Detected(m, planHardware)
		if !ok {
			return fmt.Errorf("no GPU found (%s); name the GPU model with --gpu (%s)", m.Reason, strings.Join(plan.GPUNames(), ", "))
		}
		req.GPU = g
		if !set["count"] {
			req.Count = n
		}
		if !set["interconnect"] {
			req.Interconnect = l
		}
		fmt.Fprintf(stderr, "omnigate plan: detected %d× %s (%s) through %s\n", n, g.Name, plan.GiB(g.MemoryBytes), m.Source)
	}
	if req.Engine, err = plan.ParseEngine(*engine); err != nil {
		return err
	}
	if req.DType, err = plan.ParseDType(*dtype); err != nil {
		return err
	}
	if req.KVDType, err = plan.ParseKVDType(*kvDType); err != nil {
		return err
	}
	req.GPUMemoryUtilization, req.Context, req.TP, req.Talker = *util, *contextLen, *tp, *talker
	req.Media = plan.Media{VideoSeconds: *videoSeconds, VideoAudio: *videoAudio, AudioSeconds: *audioSeconds, Images: *images}
	if req.Media.VideoWidth, req.Media.VideoHeight, err = parseSize("--video-size", *videoSize); err != nil {
		return err
	}
	if req.Media.ImageWidth, req.Media.ImageHeight, err = parseSize("--image-size", *imageSize); err != nil {
		return err
	}
	if *videoSeconds < 0 || *audioSeconds < 0 || *images < 0 {
		return fmt.Errorf("--video-seconds, --audio-seconds and --images take no negative values")
	}
	p, err := plan.Make(req, planHardware)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	} else if err := p.WriteText(stdout); err != nil {
		return err
	}
	if !p.Fits {
		return errNoFit
	}
	return nil
}

// runFleet is omnigate plan --fleet: the tiers placed on an inventory's
// machines, their engine commands, and the gateway config (to configOut,
// else after the plan).
func runFleet(path, configOut string, asJSON bool, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var inv plan.Inventory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fp, err := plan.PlanFleet(inv, planHardware)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var cfg bytes.Buffer
	if err := fp.WriteConfig(&cfg, inv.Talker); err != nil {
		return err
	}
	if configOut != "" {
		if err := os.WriteFile(configOut, cfg.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if asJSON {
		out := struct {
			Replicas []plan.Replica `json:"replicas"`
			Idle     []string       `json:"idle"`
			Notes    []string       `json:"notes"`
			Config   string         `json:"config"`
		}{fp.Replicas, fp.Idle, fp.Notes, cfg.String()}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	if err := fp.WriteText(stdout); err != nil {
		return err
	}
	if configOut != "" {
		_, err = fmt.Fprintf(stdout, "\ngateway config written to %s\n", configOut)
		return err
	}
	_, err = fmt.Fprintf(stdout, "\n%s", cfg.String())
	return err
}

// upstreamOf returns what the gateway config at path serves for the
// public name (or alias) name: its first deployment's upstream model with
// a checkpoint the planner knows, else name itself when it is not one of
// the config's names.
func upstreamOf(path, name string) (string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	cfg.ApplyDefaults()
	for _, m := range cfg.Models {
		if m.Name != name && !slices.Contains(m.Aliases, name) {
			continue
		}
		var ups []string
		for _, d := range m.Deployments {
			if _, err := plan.Lookup(d.UpstreamModel); err == nil {
				return d.UpstreamModel, nil
			}
			ups = append(ups, d.UpstreamModel)
		}
		if _, err := plan.Lookup(m.Name); err == nil {
			return m.Name, nil // a tier name the planner knows
		}
		return "", fmt.Errorf("%s: %s serves %s, which the planner does not know (it knows %s); give its config.json with --config-json",
			path, m.Name, strings.Join(ups, ", "), strings.Join(plan.ModelNames(), ", "))
	}
	return name, nil
}

// planRequest resolves the model and the GPUs.
func planRequest(model, configJSON, gpu string, count int, link string) (plan.Request, error) {
	var req plan.Request
	switch {
	case configJSON != "":
		if model == "" {
			return req, fmt.Errorf("--config-json needs --model: the id or path the engine serves")
		}
		b, err := os.ReadFile(configJSON)
		if err != nil {
			return req, err
		}
		if req.Model, err = plan.ParseConfig(b, model); err != nil {
			return req, fmt.Errorf("%s: %w", configJSON, err)
		}
	case model != "":
		m, err := plan.Lookup(model)
		if err != nil {
			return req, err
		}
		req.Model = m
	default:
		return req, fmt.Errorf("--model is required (%s, or --config-json FILE)", strings.Join(plan.ModelNames(), ", "))
	}
	req.Count = count
	if gpu != "" {
		g, ok := planHardware.Lookup(gpu)
		if !ok {
			return req, fmt.Errorf("--gpu: unknown GPU %q (known: %s)", gpu, strings.Join(plan.GPUNames(), ", "))
		}
		req.GPU = g
	}
	switch hardware.Interconnect(strings.ToLower(link)) {
	case hardware.None:
	case hardware.NVLink:
		req.Interconnect = hardware.NVLink
	case hardware.PCIe:
		req.Interconnect = hardware.PCIe
	default:
		return req, fmt.Errorf("--interconnect %q: want nvlink or pcie", link)
	}
	return req, nil
}

func parseSize(flag, s string) (int, int, error) {
	w, h, ok := strings.Cut(strings.ToLower(s), "x")
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || wi <= 0 || hi <= 0 {
		return 0, 0, fmt.Errorf("%s %q: want WIDTHxHEIGHT, such as 1280x720", flag, s)
	}
	return wi, hi, nil
}
