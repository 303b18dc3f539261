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
	"time"
)

// startSim runs omnigate sim on a free port with the instant profile and
// args; it returns the base URL and a stop function that shuts it down and
// reports runSim's error.
func startSim(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		errc <- runSim(ctx, append([]string{"--profile", "instant", "--addr", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
	}()
	stop := func() error {
		cancel()
		return <-errc
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		stop()
		t.Fatalf("no ready line: %v (stderr %q)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr) // nothing else is printed; never block the server
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "omnigate sim: profile instant serving on ")
	if !ok || strings.HasSuffix(url, ":0") {
		stop()
		t.Fatalf("ready line %q", line)
	}
	return url, stop
}

func TestRunSimServesAndShutsDown(t *testing.T) {
	url, stop := startSim(t, "--model", "tiny")
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"model":"tiny"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Errorf("runSim after cancel: %v", err)
	}
}

// --slowdown sets the engine's starting step-time factor.
func TestRunSimSlowdown(t *testing.T) {
	url, stop := startSim(t, "--slowdown", "3")
	defer stop()
	resp, err := http.Get(url + "/sim/slowdown")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"factor":3}`+"\n" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// The fault flags reach the engine: each answers every request its way.
func TestRunSimFaultFlags(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		args                    []string
		status                  int
		contentType, retryAfter string
		body                    string // a part of the body
	}{
		{"oom vllm", []string{"--oom", "1"}, 500, "", "", ""},
		{"oom ollama", []string{"--oom", "1", "--error-dialect", "ollama"}, 500, "application/json", "", "cudaMalloc failed: out of memory"},
		{"fail-html", []string{"--fail-html", "1"}, 502, "text/html", "", "<title>502 Bad Gateway</title>"},
		{"retry-after", []string{"--fail", "503=1", "--retry-after", "4"}, 503, "application/json", "4", "Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, stop := startSim(t, tc.args...)
			defer stop()
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.contentType ||
				resp.Header.Get("Retry-After") != tc.retryAfter || !strings.Contains(string(body), tc.body) {
				t.Errorf("%d %q Retry-After %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), body)
			}
		})
	}
	// A stall: the headers come, the body never does.
	url, stop := startSim(t, "--stall-after-headers", "1")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("stall: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if b, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) || len(b) > 0 {
		t.Errorf("stalled body: %q %v, want nothing until the deadline", b, err)
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
		{"help lists stall", []string{"--help"}, flag.ErrHelp, "X-Sim-Stall: 1"},
		{"help lists oom", []string{"--help"}, flag.ErrHelp, "X-Sim-OOM: 1"},
		{"help lists html", []string{"--help"}, flag.ErrHelp, "X-Sim-Fail-HTML: STATUS"},
		{"help lists retry-after", []string{"--help"}, flag.ErrHelp, "-retry-after seconds"},
		{"help lists continuation", []string{"--help"}, flag.ErrHelp, "continue_final_message"},
		{"bad oom", []string{"--oom", "2"}, nil, "oom rate 2 is outside [0, 1]"},
		{"bad fail-html", []string{"--fail-html", "-1"}, nil, "fail-html rate -1"},
		{"failures over 1", []string{"--fail", "503=0.6", "--oom", "0.6"}, nil, "add up to 1.2"},
		{"hang and stall over 1", []string{"--hang-rate", "0.5", "--stall-after-headers", "0.7"}, nil, "hang and stall rates add up"},
		{"negative retry-after", []string{"--retry-after", "-1"}, nil, "retry-after -1s is negative"},
		{"bad flag", []string{"--nope"}, errUsage, "nope"},
		{"bad fail", []string{"--fail", "503"}, nil, "STATUS=RATE"},
		{"bad dialect", []string{"--error-dialect", "klingon"}, nil, "klingon"},
		{"unknown profile", []string{"--profile", "qwen9"}, nil, "qwen9"},
		{"bad slowdown", []string{"--slowdown", "0"}, nil, "--slowdown: slowdown factor must be a number in (0, 1000], got 0"},
		{"help lists slowdown", []string{"--help"}, flag.ErrHelp, "POST /sim/slowdown"},
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
