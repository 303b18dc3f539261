// Package app wires omnigate together and holds its subcommands. Main is
// testable: it takes the context, the arguments and the output streams.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the gateway", runServe},
		{"sim", "run the engine simulator alone as an OpenAI-compatible server", runSim},
		{"validate-config", "check config files and report every problem", runValidateConfig},
		{"bench", "load harness: direct vs bare proxy vs omnigate", runBench},
		{"route", "train and evaluate the auto router's scorer", runRoute},
		{"migrate", "check requests made for one model against another's limits", runMigrate},
		{"eval", "compare models and quantized variants on a prompt set", runEval},
		{"keys", "make API keys and the hashes the config takes", runKeys},
		{"hw", "detect the GPUs and say what they support", runHW},
		{"plan", "what fits on which GPUs, and the engine command", runPlan},
		{"version", "print the version", runVersion},
	}
}

// Main runs omnigate with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "omnigate %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "omnigate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage marks a command-line mistake already reported on stderr.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: omnigate <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'omnigate <command> --help' for a command's flags.")
}

// newFlags makes a FlagSet that reports to stderr and returns errors.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("omnigate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: omnigate %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping a flag mistake to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// Version is set at build time with -ldflags "-X .../internal/app.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "omnigate %s\n", version())
	return nil
}

func init() {
	// Config validation checks sim profiles against the simulator's catalogue.
	config.ProfileExists = func(name string) bool {
		_, err := sim.LoadProfile(name)
		return err == nil
	}
}
