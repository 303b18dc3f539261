// Command benchbin is the e2e test's stand-in for the omnigate binary: it
// serves only the harness's own helper modes (bench upstream, bench proxy).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/omnigate/omnigate/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	var err error
	switch {
	case len(args) >= 2 && args[0] == "bench" && args[1] == "upstream":
		err = loadtest.UpstreamMain(ctx, args[2:], os.Stdout, os.Stderr)
	case len(args) >= 2 && args[0] == "bench" && args[1] == "proxy":
		err = loadtest.ProxyMain(ctx, args[2:], os.Stdout, os.Stderr)
	default:
		err = fmt.Errorf("benchbin: unsupported arguments %q", args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
