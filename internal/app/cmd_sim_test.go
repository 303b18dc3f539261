package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRunSimServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		errc <- runSim(ctx, []string{"--profile", "instant", "--addr", "127.0.0.1:0", "--model", "tiny"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v (stderr %q)", err, stderr.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "omnigate sim: profile instant serving on ")
	if !ok || strings.HasSuffix(url, ":0") {
		t.Fatalf("ready line %q", line)
	}
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"model":"tiny"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("runSim after cancel: %v", err)
	}
}

func TestRunSimFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want error  // errors.Is target, or nil for any error
		msg  string // in the error or on stderr
	}{
		{"help", []string{"--help"}, flag.ErrHelp, "X-Sim-Cut-After"},
		{"bad flag", []string{"--nope"}, errUsage, "nope"},
		{"bad fail", []string{"--fail", "503"}, nil, "STATUS=RATE"},
		{"bad dialect", []string{"--error-dialect", "klingon"}, nil, "klingon"},
		{"unknown profile", []string{"--profile", "qwen9"}, nil, "qwen9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runSim(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error()+stderr.String(), tc.msg) {
				t.Errorf("%q not in %v / %q", tc.msg, err, stderr.String())
			}
		})
	}
	var stdout bytes.Buffer
	if err := runSim(context.Background(), []string{"--list-profiles"}, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "qwen3-omni-30b") {
		t.Errorf("--list-profiles: %v %q", err, stdout.String())
	}
}
