// Package e2e runs the real omnigate binary: the simulator and the gateway as
// separate processes, talking over loopback, killed and signalled for real.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "omnigate-e2e")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "omnigate")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/omnigate").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build omnigate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running omnigate process and the URLs it printed.
type proc struct {
	cmd *exec.Cmd
	URL string
	// Admin is a gateway's admin listener ("" when it is off, and for the
	// other commands).
	Admin  string
	stderr *strings.Builder
}

var (
	servingRE = regexp.MustCompile(`serving on (https?://\S+)`)
	adminRE   = regexp.MustCompile(`omnigate: admin on (https?://\S+)`)
)

// start runs omnigate with args and waits for its "serving on" line.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	args = adminArgs(args, env)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd, args)
}

// adminArgs gives a gateway an admin and a gRPC listener on ports of their
// own unless the test chose them: the defaults, 127.0.0.1:8081 and
// 127.0.0.1:50051, are one port each for every gateway the tests run at
// once.
func adminArgs(args, env []string) []string {
	if len(args) == 0 || args[0] != "serve" {
		return args
	}
	args = slices.Clone(args)
	for _, l := range []struct{ flag, env string }{{"--admin-addr", "OMNIGATE_ADMIN_ADDR="}, {"--grpc-addr", "OMNIGATE_GRPC_ADDR="}} {
		chosen := slices.ContainsFunc(args, func(a string) bool { return a == l.flag || strings.HasPrefix(a, l.flag+"=") }) ||
			slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, l.env) })
		if !chosen {
			args = append(args, l.flag, "127.0.0.1:0")
		}
	}
	return args
}

// startLimited is start with the open-file limit (soft and hard) set to
// nofile, by the shell that then execs omnigate.
func startLimited(t *testing.T, nofile int, args ...string) *proc {
	t.Helper()
	args = adminArgs(args, nil)
	sh := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	return startCmd(t, exec.Command("/bin/sh", append([]string{"-c", sh, bin}, args...)...), args)
}

// startCmd starts cmd, an omnigate process run with args, and waits for its
// "serving on" line (a gateway prints its "admin on" line before it).
func startCmd(t *testing.T, cmd *exec.Cmd, args []string) *proc {
	t.Helper()
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cmd: cmd, stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], p.stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("omnigate %v exited before serving: %s", args, p.stderr.String())
			}
			if m := adminRE.FindStringSubmatch(l); m != nil {
				p.Admin = m[1]
				continue
			}
			if m := servingRE.FindStringSubmatch(l); m != nil {
				p.URL = m[1]
				go func() {
					for range lines {
					}
				}()
				return p
			}
		case <-deadline:
			t.Fatalf("omnigate %v did not start: %s", args, p.stderr.String())
		}
	}
}

// freeAddr returns a loopback host:port that nothing listened on a moment
// ago, for a flag that takes no port 0.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "omnigate.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// tiersConfig writes a gateway config with the 30B tier on large, the 7B
// tier on small (both vLLM), the 30B tier's limits, and 30B falling back
// to 7B.
func tiersConfig(t *testing.T, large, small, largeLimits string) string {
	return writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: qwen3-omni-30b
    limits: %s
    deployments: [{name: large-1, kind: openai, url: "%s/v1", dialect: vllm}]
  - name: qwen3-omni-7b
    deployments: [{name: small-1, kind: openai, url: "%s/v1", dialect: vllm}]
routing:
  fallbacks: {qwen3-omni-30b: [qwen3-omni-7b]}
`, largeLimits, large, small))
}

func chat(ctx context.Context, url, body string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// TestGatewayOverSimProcess: the gateway in front of a simulator that runs as
// its own process, streaming and not.
func TestGatewayOverSimProcess(t *testing.T) {
	sim := start(t, "sim", "--profile", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	cfg := writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: qwen3-omni-7b
    deployments: [{name: sim-proc, kind: openai, url: "%s/v1", upstream_model: qwen3-omni-7b, dialect: vllm}]
`, sim.URL))
	gw := start(t, "serve", "--config", cfg)

	resp, err := chat(context.Background(), gw.URL, `{"model":"qwen3-omni-7b","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"chat.completion"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}

	resp, err = chat(context.Background(), gw.URL, `{"model":"qwen3-omni-7b","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"hello"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(b), "data: "); resp.StatusCode != 200 || n < 4 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("%d, %d events: %s", resp.StatusCode, n, b)
	}
}

// TestSimKilledMidRequestFallsBack: the large tier's only replica is killed;
// the next request is served by the fallback tier, and the request that was
// in flight gets a clean error, not a hang.
func TestSimKilledMidRequestFallsBack(t *testing.T) {
	large := start(t, "sim", "--profile", "qwen3-omni-30b", "--addr", "127.0.0.1:0")
	small := start(t, "sim", "--profile", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	cfg := tiersConfig(t, large.URL, small.URL, "{max_tokens: 4096}")
	gw := start(t, "serve", "--config", cfg)

	// A streaming request is in flight on the large tier when its engine dies.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := chat(ctx, gw.URL, `{"model":"qwen3-omni-30b","stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	large.cmd.Process.Kill()
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("stream cut by a dead engine must not look complete: %q", rest)
	}
	if !strings.Contains(string(rest), `"error"`) {
		t.Errorf("stream cut by a dead engine should end with an error event: %q", rest)
	}

	// The next request goes to the fallback tier.
	resp, err = chat(ctx, gw.URL, `{"model":"qwen3-omni-30b","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"model":"qwen3-omni-7b"`) {
		t.Fatalf("fallback: %d %s", resp.StatusCode, b)
	}
}

// TestGracefulShutdown: SIGTERM lets a running stream finish, then the
// process exits 0 and stops accepting.
func TestGracefulShutdown(t *testing.T) {
	gw := start(t, "serve", "--addr", "127.0.0.1:0")
	rest, err := streamThroughSIGTERM(t, gw, `{"model":"qwen3-omni-7b","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"count"}]}`)
	if err != nil || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Fatalf("stream did not finish during the grace period: err %v, %q", err, rest)
	}
	done := make(chan error, 1)
	go func() { done <- gw.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	if _, err := http.Get(gw.URL + "/healthz"); err == nil {
		t.Error("gateway still accepting after shutdown")
	}
}

// streamThroughSIGTERM opens a stream at gw, reads its first line, sends
// gw SIGTERM and returns the rest of the stream.
func streamThroughSIGTERM(t *testing.T, gw *proc, body string) (string, error) {
	t.Helper()
	resp, err := chat(context.Background(), gw.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	gw.cmd.Process.Signal(syscall.SIGTERM)
	rest, err := io.ReadAll(br)
	return string(rest), err
}

// TestEnvOverrides: OMNIGATE_CONFIG and OMNIGATE_ADDR configure serve without flags.
func TestEnvOverrides(t *testing.T) {
	cfg := writeConfig(t, `
server: {addr: "127.0.0.1:1"}
models:
  - name: only-model
    deployments: [{name: s, kind: sim, profile: instant}]
`)
	gw := startEnv(t, []string{"OMNIGATE_CONFIG=" + cfg, "OMNIGATE_ADDR=127.0.0.1:0"}, "serve")
	resp, err := http.Get(gw.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"only-model"`) || strings.Contains(string(b), "qwen3") {
		t.Errorf("models from OMNIGATE_CONFIG: %s", b)
	}
}

// TestValidateConfigExitCodes: the CLI's exit status tells a script the verdict.
func TestValidateConfigExitCodes(t *testing.T) {
	good := writeConfig(t, "models: [{name: a, deployments: [{name: s, kind: sim, profile: instant}]}]\n")
	bad := writeConfig(t, "models: [{name: a, deployments: [{name: s, kind: sim, profile: no-such-profile}]}]\n")
	if out, err := exec.Command(bin, "validate-config", good).CombinedOutput(); err != nil {
		t.Errorf("good config: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "validate-config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "deployments[0].profile") {
		t.Errorf("bad config: %v\n%s", err, out)
	}
	if err := exec.Command(bin, "serve", "--no-such-flag").Run(); err == nil {
		t.Error("unknown flag accepted")
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("unknown flag: %v, want exit 2", err)
	}
}

// TestDebugAddr: --debug-addr serves pprof on its own listener, not on the API port.
func TestDebugAddr(t *testing.T) {
	addr := freeAddr(t)
	gw := start(t, "serve", "--addr", "127.0.0.1:0", "--debug-addr", addr)
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "goroutine profile:") {
		t.Errorf("debug listener: %.100s", b)
	}
	resp, err = http.Get(gw.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("pprof reachable on the API port: %d", resp.StatusCode)
	}
}

// TestEngineDialectsEndToEnd: each engine's error shape, produced by a real
// simulator process, reaches the client as the OpenAI shape with the right
// status and code.
func TestEngineDialectsEndToEnd(t *testing.T) {
	for _, dialect := range []string{"vllm", "vllm-legacy", "llamacpp", "modelstudio", "ollama"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			sim := start(t, "sim", "--profile", "qwen3-omni-7b", "--addr", "127.0.0.1:0", "--error-dialect", dialect)
			gwDialect := dialect
			cfg := writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: m
    context_window: 1000000
    deployments: [{name: d, kind: openai, url: "%s/v1", upstream_model: qwen3-omni-7b, dialect: %s}]
`, sim.URL, gwDialect))
			gw := start(t, "serve", "--config", cfg)
			// Prompt + max_tokens over the engine's 32,768-token max_model_len:
			// the gateway's own window is larger, so the engine must refuse it.
			body := `{"model":"m","max_tokens":32000,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 4000) + `"}]}`
			resp, err := chat(context.Background(), gw.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Error struct {
					Message, Type string
					Code          *string
				}
			}
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("not JSON: %s", b)
			}
			code := ""
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || e.Error.Message == "" {
				t.Errorf("got %d %s", resp.StatusCode, b)
			}
			if dialect != "ollama" && code != "context_length_exceeded" {
				t.Errorf("code %q, want context_length_exceeded: %s", code, b)
			}
		})
	}
}

// TestOverloadedTierFallsBack: an engine answering 503 to everything (sim
// fault injection) sends every request down the fallback chain.
func TestOverloadedTierFallsBack(t *testing.T) {
	large := start(t, "sim", "--profile", "qwen3-omni-30b", "--addr", "127.0.0.1:0", "--fail", "503=1")
	small := start(t, "sim", "--profile", "instant", "--model", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	cfg := tiersConfig(t, large.URL, small.URL, "{}")
	gw := start(t, "serve", "--config", cfg)
	for i := range 5 {
		resp, err := chat(context.Background(), gw.URL, `{"model":"qwen3-omni-30b","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"model":"qwen3-omni-7b"`) {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		if m, f := resp.Header.Get("X-Omnigate-Model"), resp.Header.Get("X-Omnigate-Fallback"); m != "qwen3-omni-7b" || f != "qwen3-omni-30b; reason=503" {
			t.Errorf("request %d: X-Omnigate-Model %q, X-Omnigate-Fallback %q", i, m, f)
		}
	}
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		// Three 503s in a row open large-1's breaker: the last two requests
		// go straight to the fallback without asking it.
		`omnigate_upstream_requests_total{deployment="large-1",model="qwen3-omni-30b",outcome="503"} 3`,
		`omnigate_fallbacks_total{from="qwen3-omni-30b",to="qwen3-omni-7b"} 5`,
		`omnigate_requests_total{code="200",deployment="small-1",model="qwen3-omni-30b",stream="false"} 5`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestOpenFileLimitIsTheGatewaysOwn: when the gateway runs out of file
// descriptors it answers the requests it cannot forward with 503
// gateway_overloaded, does not hold the shortage against the replica, and
// serves the first request after descriptors free up.
func TestOpenFileLimitIsTheGatewaysOwn(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to count the gateway's descriptors")
	}
	const nofile = 40
	// Answers of 1,000 tokens at 50 ms each: the streams outlast the test.
	profile := filepath.Join(t.TempDir(), "long.yaml")
	if err := os.WriteFile(profile, []byte("name: long\nmax_model_len: 32768\nmax_num_batched_tokens: 8192\n"+
		"block_size: 16\ndecode_base: 50ms\nanswer_tokens: [1000, 1000]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sim := start(t, "sim", "--profile", profile, "--model", "qwen3-omni-7b", "--addr", "127.0.0.1:0")
	cfg := writeConfig(t, fmt.Sprintf(`
server: {addr: "127.0.0.1:0"}
models:
  - name: qwen3-omni-7b
    deployments: [{name: small-1, kind: openai, url: "%s/v1", dialect: vllm}]
`, sim.URL))
	gw := startLimited(t, nofile, "serve", "--config", cfg)
	fdDir := fmt.Sprintf("/proc/%d/fd", gw.cmd.Process.Pid)
	free := func() int { // descriptor numbers below the limit not in use
		t.Helper()
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		n := nofile
		for _, fd := range fds {
			if i, err := strconv.Atoi(fd.Name()); err == nil && i < nofile {
				n-- // an inherited descriptor above the limit takes no slot
			}
		}
		return n
	}

	// Hold streams open (each takes a client and an upstream socket) until
	// one descriptor is left: a new request can be accepted, not forwarded.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := &http.Client{Transport: &http.Transport{}}
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for free() >= 3 {
		if len(held) > nofile {
			t.Fatalf("%d streams open and the gateway still has %d descriptors free", len(held), free())
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"qwen3-omni-7b","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`))
		resp, err := streams.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream %d: %d %s", len(held), resp.StatusCode, b)
		}
		held = append(held, resp.Body)
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err) // the first event: the upstream socket is open
		}
	}
	if free() == 2 {
		c, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		for end := time.Now().Add(5 * time.Second); free() == 2 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond) // until the gateway has accepted it
		}
	}
	if n := free(); n != 1 {
		t.Fatalf("%d descriptors free, want 1", n)
	}

	once := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var retryAfter string
	ask := func() (int, string) {
		t.Helper()
		resp, err := once.Post(gw.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"qwen3-omni-7b","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		retryAfter = resp.Header.Get("Retry-After")
		return resp.StatusCode, string(b)
	}

	for i := range 5 { // more than the failures that mark a replica down
		if code, b := ask(); code != http.StatusServiceUnavailable || !strings.Contains(b, `"code":"gateway_overloaded"`) {
			t.Fatalf("request %d at the limit: %d %s, want 503 gateway_overloaded", i, code, b)
		}
		if retryAfter != "1" {
			t.Errorf("request %d at the limit: Retry-After %q, want 1", i, retryAfter)
		}
	}

	cancel()
	for _, c := range held {
		c.Close()
	}
	held = nil
	for end := time.Now().Add(10 * time.Second); free() < 4 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond) // until the gateway has closed the streams' sockets
	}
	if code, b := ask(); code != 200 {
		t.Fatalf("after the streams closed: %d %s, want 200 at once (the replica must not be marked down)", code, b)
	}
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `omnigate_upstream_requests_total{deployment="small-1",model="qwen3-omni-7b",outcome="gateway_limit"} 5`; !strings.Contains(string(m), want) {
		t.Errorf("metrics lack %s", want)
	}
}
