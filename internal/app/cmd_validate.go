package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/omnigate/omnigate/internal/config"
)

// runValidateConfig is `omnigate validate-config FILE...`: it loads, defaults
// and validates each file and prints "FILE: ok (N models, M deployments)" or
// every problem as "FILE: PATH: MESSAGE". Environment-dependent findings
// (unset api_key_env variables, certificate files missing on this machine)
// print as "FILE: warning: PATH: MESSAGE" and do not fail the command.
func runValidateConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return validateConfigFiles(ctx, args, stdout, stderr, os.Getenv)
}

func validateConfigFiles(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags("validate-config", "FILE...", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: omnigate validate-config FILE...

Checks each configuration file: YAML syntax, unknown keys, and every rule of
docs/configuration.md. Prints "FILE: ok (...)" or each problem as
"FILE: PATH: MESSAGE", and exits 1 if any file has a problem. Unset
api_key_env variables and certificate files that are missing or do not
load here are reported as warnings and do not fail the check (serve
refuses them).
`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		fmt.Fprintln(stderr, "omnigate validate-config: no FILE given")
		fs.Usage()
		return errUsage
	}
	bad := 0
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !validateConfigFile(f, stdout, getenv) {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d files have problems", bad, len(files))
	}
	return nil
}

// validateConfigFile reports on one file and returns whether it is valid.
func validateConfigFile(name string, stdout io.Writer, getenv func(string) string) bool {
	cfg, err := config.Load(name)
	if err != nil {
		var de *config.DecodeError
		if errors.As(err, &de) {
			for _, line := range de.Errors { // already "FILE:LINE: message"
				fmt.Fprintln(stdout, line)
			}
		} else {
			fmt.Fprintf(stdout, "%s: %v\n", name, err)
		}
		return false
	}
	cfg.ApplyDefaults()
	if problems := cfg.Validate(); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stdout, "%s: %s\n", name, p)
		}
		return false
	}
	deployments := 0
	for _, m := range cfg.Models {
		deployments += len(m.Deployments)
	}
	fmt.Fprintf(stdout, "%s: ok (%d models, %d deployments)\n", name, len(cfg.Models), deployments)
	for _, w := range cfg.Warnings(getenv) {
		fmt.Fprintf(stdout, "%s: warning: %s\n", name, w)
	}
	return true
}
