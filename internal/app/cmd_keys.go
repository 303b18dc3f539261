package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/omnigate/omnigate/internal/auth"
)

// runKeys is `omnigate keys new|hash`: make an API key, and the hash
// auth.keys[].hash takes (the config never holds the secret).
func runKeys(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return keys(args, os.Stdin, stdout, stderr)
}

func keys(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "new" && args[0] != "hash") {
		fmt.Fprint(stderr, `Usage: omnigate keys new
       omnigate keys hash [KEY]

new prints a new random API key and its hash; hash prints the hash of KEY,
or of the first line of standard input (which keeps the key out of the
shell's history). The hash goes in auth.keys[].hash; the key goes to the
client, which sends it as Authorization: Bearer KEY.
`)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errUsage
	}
	if args[0] == "new" {
		k := auth.NewSecret()
		fmt.Fprintf(stdout, "key:  %s\nhash: %s\n", k, auth.Hash(k))
		return nil
	}
	k := ""
	if len(args) > 1 {
		k = args[1]
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return err
		}
		k = strings.TrimRight(line, "\r\n")
	}
	if k == "" {
		fmt.Fprintln(stderr, "omnigate keys hash: no key given")
		return errUsage
	}
	fmt.Fprintln(stdout, auth.Hash(k))
	return nil
}
