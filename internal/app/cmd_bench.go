package app

import (
	"context"
	"io"

	"github.com/omnigate/omnigate/internal/loadtest"
)

// runBench is `omnigate bench`: the load harness, or one of the helper
// processes it starts (`bench upstream`, `bench proxy`).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "upstream":
			return loadtest.UpstreamMain(ctx, args[1:], stdout, stderr)
		case "proxy":
			return loadtest.ProxyMain(ctx, args[1:], stdout, stderr)
		}
	}
	opts, err := loadtest.ParseOptions(args, stderr)
	if err != nil {
		return err
	}
	_, err = loadtest.Run(ctx, opts, stdout)
	return err
}
