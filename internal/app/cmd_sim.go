package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/sim"
)

// simHeaders are the per-request fault headers omnigate sim --help lists:
// the header with its value, and what it does.
var simHeaders = [][2]string{
	{sim.HeaderFail + ": STATUS", "answer with that error status"},
	{sim.HeaderFailHTML + ": STATUS", "answer with nginx's HTML error page"},
	{sim.HeaderOOM + ": 1", "answer as the dialect's engine out of memory"},
	{sim.HeaderHang + ": 1", "hang before the first token"},
	{sim.HeaderStall + ": 1", "send 200 and the headers, then nothing"},
	{sim.HeaderRetryAfter + ": SECONDS", "Retry-After on injected 429 and 503 answers"},
	{sim.HeaderCutAfter + ": N", "drop the connection after N stream chunks"},
	{sim.HeaderSlow + ": 50ms", "extra delay before every token"},
	{sim.HeaderErrorDialect + ": DIALECT", "error body shape"},
}

// printSimUsageTail ends omnigate sim --help: how faults combine, the
// per-request headers and what is served.
func printSimUsageTail(w io.Writer) {
	fmt.Fprint(w, "\nA request draws at most one of --fail, --fail-html and --oom (their rates add\n"+
		"up to at most 1) and at most one of --hang-rate and --stall-after-headers.\n\n"+
		"Per-request overrides (headers):\n")
	for _, h := range simHeaders {
		fmt.Fprintf(w, "  %-31s %s\n", h[0], h[1])
	}
	fmt.Fprint(w, "\nChat requests may continue a final assistant message as vLLM does\n"+
		"(\"continue_final_message\": true, \"add_generation_prompt\": false): the answer\n"+
		"goes on exactly where the given text of the same request's answer stops.\n\n"+
		"POST /sim/slowdown {\"factor\": 3} makes every engine step three times as long\n"+
		"from the next step on (1 restores the profile's speed); GET /sim/slowdown shows it.\n\n"+
		"Serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics, /health, /sim/slowdown.\n")
}

// runSim runs the built-in engine simulator as a standalone OpenAI-compatible
// server, until ctx is cancelled.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", "[--profile NAME|FILE] [--addr HOST:PORT] [--model NAME] [fault flags]", stderr)
	profile := fs.String("profile", "qwen3-omni-7b", "engine profile: a built-in name ("+strings.Join(sim.ProfileNames(), ", ")+") or a YAML file")
	addr := fs.String("addr", "127.0.0.1:8001", "listen address (port 0 picks a free port)")
	model := fs.String("model", "", "model name to serve and report (default: the profile's name)")
	fail := fs.String("fail", "", "inject errors: comma-separated STATUS=RATE, e.g. 503=0.2,500=0.05")
	failHTML := fs.Float64("fail-html", 0, "fraction of requests answered 502 with nginx's HTML error page, as a proxy in front of a dead engine answers")
	oom := fs.Float64("oom", 0, "fraction of requests answered the way the error dialect's engine reports running out of GPU or KV-cache memory")
	hang := fs.Float64("hang-rate", 0, "fraction of requests that hang before the first token until the client leaves")
	stall := fs.Float64("stall-after-headers", 0, "fraction of requests answered 200 with their headers flushed, then nothing until the client leaves")
	retryAfter := fs.Int("retry-after", 0, "Retry-After `seconds` on injected 429 and 503 answers (0: none)")
	cut := fs.Int("cut-after", 0, "drop every stream's connection after N chunks, abruptly: no [DONE], no chunked terminator (0: off)")
	slow := fs.Duration("slow", 0, "extra delay before every token, e.g. 50ms")
	slowdown := fs.Float64("slowdown", 1, "multiply the duration of every engine step by `F` (the whole batch slows; change it at runtime with POST /sim/slowdown)")
	quant := fs.String("quantization", "", "behave as a quantized variant of the profile's model: fp8, int8, awq-int4, gptq-int4… (faster steps, a few answers differ; see sim.QuantizationFor)")
	dialect := fs.String("error-dialect", sim.DialectVLLM, "error body shape: "+strings.Join(sim.Dialects(), ", "))
	seed := fs.Uint64("seed", 0, "seed for the random fault draws (0: random)")
	grace := fs.Duration("shutdown-grace", 5*time.Second, "how long in-flight requests may finish after shutdown starts")
	list := fs.Bool("list-profiles", false, "print the built-in profiles and exit")
	flagsUsage := fs.Usage
	fs.Usage = func() {
		flagsUsage()
		printSimUsageTail(stderr)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "omnigate sim: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *list {
		for _, name := range sim.ProfileNames() {
			p, err := sim.LoadProfile(name)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-16s %s\n", name, p.Description)
		}
		return nil
	}
	p, err := sim.LoadProfile(*profile)
	if err != nil {
		return err
	}
	faults := sim.Faults{FailHTMLRate: *failHTML, OOMRate: *oom, HangRate: *hang, StallRate: *stall,
		RetryAfter: time.Duration(*retryAfter) * time.Second, CutAfter: *cut, Slow: *slow, ErrorDialect: *dialect, Seed: *seed}
	if *fail != "" {
		if faults.Fail, err = sim.ParseFailRates(*fail); err != nil {
			return fmt.Errorf("--fail: %w", err)
		}
	}
	if err := faults.Validate(); err != nil {
		return err
	}

	eng := sim.New(p, sim.Options{Faults: faults, ModelName: *model, Quantization: sim.QuantizationFor(*quant)})
	defer eng.Close()
	if err := eng.SetSlowdown(*slowdown); err != nil {
		return fmt.Errorf("--slowdown: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: eng.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "omnigate sim: profile %s serving on http://%s\n", p.Name, ln.Addr())

	select {
	case err := <-served: // the listener failed
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	err = srv.Shutdown(sctx)
	eng.Close() // whatever is still running gets an error now
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		err = nil
	}
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
