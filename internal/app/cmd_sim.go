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

// runSim runs the built-in engine simulator as a standalone OpenAI-compatible
// server, until ctx is cancelled.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", "[--profile NAME|FILE] [--addr HOST:PORT] [--model NAME] [fault flags]", stderr)
	profile := fs.String("profile", "qwen3-omni-7b", "engine profile: a built-in name ("+strings.Join(sim.ProfileNames(), ", ")+") or a YAML file")
	addr := fs.String("addr", "127.0.0.1:8001", "listen address (port 0 picks a free port)")
	model := fs.String("model", "", "model name to serve and report (default: the profile's name)")
	fail := fs.String("fail", "", "inject errors: comma-separated STATUS=RATE, e.g. 503=0.2,500=0.05")
	hang := fs.Float64("hang-rate", 0, "fraction of requests that hang before the first token until the client leaves")
	cut := fs.Int("cut-after", 0, "drop every stream's connection after N chunks, without [DONE] (0: off)")
	slow := fs.Duration("slow", 0, "extra delay before every token, e.g. 50ms")
	dialect := fs.String("error-dialect", sim.DialectVLLM, "error body shape: "+strings.Join(sim.Dialects(), ", "))
	seed := fs.Uint64("seed", 0, "seed for the random fault draws (0: random)")
	grace := fs.Duration("shutdown-grace", 5*time.Second, "how long in-flight requests may finish after shutdown starts")
	list := fs.Bool("list-profiles", false, "print the built-in profiles and exit")
	flagsUsage := fs.Usage
	fs.Usage = func() {
		flagsUsage()
		fmt.Fprintf(stderr, "\nPer-request overrides (headers): %s: STATUS, %s: 1, %s: N, %s: 50ms, %s: DIALECT.\nServes /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics, /health.\n",
			sim.HeaderFail, sim.HeaderHang, sim.HeaderCutAfter, sim.HeaderSlow, sim.HeaderErrorDialect)
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
	faults := sim.Faults{HangRate: *hang, CutAfter: *cut, Slow: *slow, ErrorDialect: *dialect, Seed: *seed}
	if *fail != "" {
		if faults.Fail, err = sim.ParseFailRates(*fail); err != nil {
			return fmt.Errorf("--fail: %w", err)
		}
	}
	if err := faults.Validate(); err != nil {
		return err
	}

	eng := sim.New(p, sim.Options{Faults: faults, ModelName: *model})
	defer eng.Close()
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
