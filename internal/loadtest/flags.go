package loadtest

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseOptions parses the flags of `omnigate bench`.
func ParseOptions(args []string, stderr io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: omnigate bench [flags]          measure direct vs bare proxy vs omnigate")
		fmt.Fprintln(stderr, "       omnigate bench upstream [flags] fixed-payload upstream (helper)")
		fmt.Fprintln(stderr, "       omnigate bench proxy [flags]    bare reverse proxy (helper)")
		fs.PrintDefaults()
	}
	mode := fs.String("mode", "all", "small, stream, payload, idle-streams, soak, cached (cache hits; not in all), auto (model auto; not in all), all, or a comma-separated list")
	targets := fs.String("targets", "direct,proxy,omnigate", "comma-separated targets: direct, proxy, omnigate (its HTTP API), grpc (its gRPC API)")
	fs.IntVar(&o.GRPCConns, "grpc-conns", 1, "connections the grpc target's calls share")
	fs.IntVar(&o.GRPCWindow, "grpc-window", 0, "the grpc target's clients' static flow control window in `bytes` (0: gRPC's default, estimated with pings)")
	fs.DurationVar(&o.Duration, "duration", 0, "measured length of each phase (default 10s)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "unrecorded load before each phase (default 1s; negative: none)")
	fs.Float64Var(&o.Rate, "rate", 0, "open-loop rate in req/s (alone: open loop only; default 1000 plus closed loop)")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "closed-loop workers (alone: closed loop only; default 50 plus open loop)")
	fs.IntVar(&o.MaxRequests, "max-requests", 0, "request cap per phase (default 2000000)")
	fs.IntVar(&o.Streams, "streams", 0, "idle-streams: concurrent streams (default 10000)")
	fs.DurationVar(&o.Hold, "hold", 0, "idle-streams: how long to hold them open (default 3s)")
	fs.DurationVar(&o.Soak, "soak", 0, "soak mode length (default 3m)")
	fs.IntVar(&o.Payload, "payload", 0, "payload mode response size in bytes (default 10240)")
	fs.BoolVar(&o.Pin, "pin", false, "pin servers and load generator to separate CPUs")
	serverCPUs := fs.String("server-cpus", "0", "with --pin: CPUs for upstream, proxy and gateway")
	clientCPUs := fs.String("client-cpus", "1", "with --pin: CPUs for the load generator")
	fs.StringVar(&o.Upstream, "upstream", "", "use this upstream base URL (loopback, e.g. http://127.0.0.1:8000/v1) instead of starting one")
	fs.BoolVar(&o.UpstreamSim, "sim", false, "use `omnigate sim --profile instant` as the upstream for small and stream")
	fs.BoolVar(&o.Keyed, "keyed", false, "give omnigate an API key with rate limits and budgets (never reached) and send it with every request: what the key check and the limits cost")
	fs.BoolVar(&o.Rename, "rename", false, "give omnigate's deployment its own upstream model name, so every answer goes through the model-name rewrite (the usual setup)")
	fs.StringVar(&o.Bin, "bin", "", "omnigate binary to run as children (default: this one)")
	fs.StringVar(&o.Out, "out", "", "write the JSON result here")
	fs.IntVar(&o.Runs, "runs", 1, "repeat everything this many times and report medians")
	quiet := fs.Bool("quiet", false, "no per-second progress")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if *mode != "all" {
		o.Modes = splitList(*mode)
	}
	o.Targets = splitList(*targets)
	var err error
	if o.ServerCPUs, err = parseCPUs(*serverCPUs); err != nil {
		return o, err
	}
	if o.ClientCPUs, err = parseCPUs(*clientCPUs); err != nil {
		return o, err
	}
	if !*quiet {
		o.Progress = stderr
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseCPUs parses a taskset-style list: "0", "0,2", "0-3".
func parseCPUs(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("bench: bad CPU list %q", s)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}
