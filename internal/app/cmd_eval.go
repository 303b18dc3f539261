package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/eval"
	"github.com/omnigate/omnigate/internal/router"
)

// envAPIKey is the variable --api-key defaults to.
const envAPIKey = "OMNIGATE_API_KEY"

// runEval is `omnigate eval`: a prompt set asked of several targets
// (models, or single deployments of one), scored against the set's
// references and against the first target.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return evalMain(ctx, args, stdout, stderr, clock.Real{})
}

// evalMain is runEval timing requests by clk (tests freeze it, so the
// report's latency columns are stable).
func evalMain(ctx context.Context, args []string, stdout, stderr io.Writer, clk clock.Clock) error {
	fs := newFlags("eval", "--prompts SET.jsonl --target NAME [--target NAME…] [--config FILE | --url URL]", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: omnigate eval --prompts SET.jsonl --target NAME [--target NAME…] [--config FILE | --url URL]

Asks every item of a prompt set of each target in turn, at temperature 0
with logprobs, and reports per target: errors, accuracy on the items with
a reference, agreement with the first target (the share of items both
answered the same), the mean logprob difference from it on those items,
client-side latency and tokens.

A target is a model (its name or an alias, routed as a client's request
would be) or MODEL/DEPLOYMENT: that deployment alone (the model keeps only
it, with no fallbacks and no answer cache). Each target gets a gateway of
its own, built in this process from the config and served on a loopback
port, so every check a client meets applies. With --url, the targets are
models of that running gateway instead.

The prompt set is JSON lines: {"id": "q1", "prompt": "..."} or
{"id": "q1", "messages": [...]}, with an optional "reference", "match"
(exact, the default; contains; choice) and "max_tokens" (default 256).
See docs/eval.md.

Flags:
`)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "the gateway's config `file` (default: OMNIGATE_CONFIG, else the built-in one)")
	prompts := fs.String("prompts", "", "the prompt set (`file`, JSON lines)")
	var names targetList
	fs.Var(&names, "target", "a `model` or MODEL/DEPLOYMENT to evaluate; repeat it, the first is the baseline")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	concurrency := fs.Int("concurrency", 8, "requests in flight at once, per target")
	out := fs.String("out", "", "also write every answer to `file` (JSON lines)")
	url := fs.String("url", "", "evaluate the models of the gateway running at this `URL` (http://host:port)")
	apiKey := fs.String("api-key", os.Getenv(envAPIKey), "the API `key` sent as a bearer token (env "+envAPIKey+")")
	timeout := fs.Duration("timeout", 2*time.Minute, "the longest one request may take")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *prompts == "" || len(names) == 0 || fs.NArg() != 0:
		fs.Usage()
		return errUsage
	case *concurrency < 1:
		fmt.Fprintln(stderr, "omnigate eval: --concurrency must be at least 1")
		return errUsage
	case *url != "" && *cfgPath != "":
		fmt.Fprintln(stderr, "omnigate eval: give --config or --url, not both (--url evaluates a running gateway's models)")
		return errUsage
	}
	items, err := readPromptSet(*prompts)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: evalTransport(*concurrency)}
	opts := eval.Options{Concurrency: *concurrency, Timeout: *timeout, Clock: clk}
	var targets []evalTarget
	if *url != "" {
		targets, err = remoteTargets(ctx, client, *url, *apiKey, names)
	} else {
		var cfg *config.Config
		if cfg, err = config.FromEnvAndFile(*cfgPath, os.Getenv); err == nil {
			targets, err = localTargets(cfg, names)
		}
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, config.Logging{}, levelVar(slog.LevelWarn))
	var runs []eval.Run
	for _, t := range targets {
		start := clk.Now()
		run, err := t.ask(ctx, client, *apiKey, items, opts, log)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		errs := 0
		for _, a := range run.Answers {
			if a.Error != "" {
				errs++
			}
		}
		fmt.Fprintf(stderr, "omnigate eval: %s: %d items in %.1fs, %d errors\n", t.name, len(items), clk.Now().Sub(start).Seconds(), errs)
		runs = append(runs, run)
	}
	if *out != "" {
		if err := writeAnswers(*out, runs); err != nil {
			return err
		}
	}
	report := eval.Summarize(items, runs)
	if *asJSON {
		err = eval.WriteJSON(stdout, report)
	} else {
		err = eval.WriteTable(stdout, report)
	}
	if err != nil {
		return err
	}
	for _, t := range report.Targets {
		if t.Errors == t.Items {
			return fmt.Errorf("%s answered none of the %d items (first error: %s)", t.Target, t.Items, t.FirstError)
		}
	}
	return nil
}

// targetList is a repeatable --target.
type targetList []string

func (l *targetList) String() string { return strings.Join(*l, ", ") }

func (l *targetList) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty target")
	}
	*l = append(*l, s)
	return nil
}

// levelVar returns a LevelVar set to l.
func levelVar(l slog.Level) *slog.LevelVar {
	v := new(slog.LevelVar)
	v.Set(l)
	return v
}

// evalTransport keeps as many idle connections as requests run at once,
// so a run reuses them as a client pool would.
func evalTransport(concurrency int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency
	return tr
}

func readPromptSet(path string) ([]eval.Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	items, err := eval.ReadItems(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return items, nil
}

func writeAnswers(path string, runs []eval.Run) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := eval.WriteAnswers(f, runs); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// evalTarget is one --target, resolved: the model name a request carries
// and either the config its own gateway is built from or a running
// gateway's URL.
type evalTarget struct {
	name, model string
	cfg         *config.Config // nil: url
	url         string
}

// ask runs the items against t: on a gateway built from t.cfg and served
// on a loopback port for the run, or on t.url.
func (t evalTarget) ask(ctx context.Context, client *http.Client, apiKey string, items []eval.Item, opts eval.Options, log *slog.Logger) (eval.Run, error) {
	url := t.url
	if t.cfg != nil {
		gw, err := newGateway(t.cfg, log, slog.New(slog.DiscardHandler))
		if err != nil {
			return eval.Run{}, err
		}
		srv := httptest.NewServer(gw)
		defer func() {
			client.CloseIdleConnections()
			srv.Close()
			gw.Close()
		}()
		url = srv.URL
	}
	return eval.Ask(ctx, eval.Target{Name: t.name, Model: t.model, URL: url, APIKey: apiKey, Client: client}, items, opts), nil
}

// localTargets resolves names against cfg: a model name, alias or auto
// name is a model target, served by cfg as it is; MODEL/DEPLOYMENT is
// that deployment alone (deploymentConfig).
func localTargets(cfg *config.Config, names []string) ([]evalTarget, error) {
	cat, err := catalog.New(cfg)
	if err != nil {
		return nil, err
	}
	rt, err := router.New(cat, cfg.Routing)
	if err != nil {
		return nil, err
	}
	var out []evalTarget
	for _, name := range names {
		if _, ok := cat.Lookup(name); ok || rt.IsAuto(name) {
			out = append(out, evalTarget{name: name, model: name, cfg: cfg})
			continue
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return nil, fmt.Errorf("--target %q: unknown model (models: %s)", name, strings.Join(cat.Names(), ", "))
		}
		m, ok := cat.Lookup(name[:i])
		if !ok {
			return nil, fmt.Errorf("--target %q: unknown model %q (models: %s)", name, name[:i], strings.Join(cat.Names(), ", "))
		}
		dc, err := deploymentConfig(cfg, m.Name, name[i+1:])
		if err != nil {
			return nil, fmt.Errorf("--target %q: %w", name, err)
		}
		out = append(out, evalTarget{name: name, model: m.Name, cfg: dc})
	}
	return out, nil
}

// deploymentConfig is cfg with model served by the deployment named dep
// alone: no other deployment, no fallback to another model and no answer
// cache (whose entries the model's other deployments may have written),
// so every answer comes from that deployment. The rest of cfg is shared.
func deploymentConfig(cfg *config.Config, model, dep string) (*config.Config, error) {
	c := *cfg
	c.Models = slices.Clone(cfg.Models)
	for i := range c.Models {
		m := &c.Models[i]
		if m.Name != model {
			continue
		}
		var names []string
		for _, d := range m.Deployments {
			if d.Name == dep {
				m.Deployments = []config.Deployment{d}
				m.Cache.Mode = config.CacheOff
				c.Routing.Fallbacks = maps.Clone(cfg.Routing.Fallbacks)
				delete(c.Routing.Fallbacks, model)
				for _, a := range m.Aliases {
					delete(c.Routing.Fallbacks, a)
				}
				if ps := c.Validate(); len(ps) > 0 {
					return nil, &config.ValidationError{Source: "the config with " + model + " on " + dep + " alone", Problems: ps}
				}
				return &c, nil
			}
			names = append(names, d.Name)
		}
		return nil, fmt.Errorf("model %s has no deployment %q (deployments: %s)", model, dep, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("unknown model %q", model)
}

// remoteTargets checks names against the models the gateway at url lists:
// a deployment target cannot be reached through a running gateway, whose
// routing picks among a model's deployments.
func remoteTargets(ctx context.Context, client *http.Client, url, apiKey string, names []string) ([]evalTarget, error) {
	url = strings.TrimSuffix(url, "/")
	models, err := listModels(ctx, client, url, apiKey)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	var out []evalTarget
	for _, name := range names {
		switch {
		case slices.Contains(models, name):
			out = append(out, evalTarget{name: name, model: name, url: url})
		case strings.Contains(name, "/"):
			return nil, fmt.Errorf("--target %q: %s serves no model of that name, and a MODEL/DEPLOYMENT target needs a gateway built from the config (--config, without --url): a running gateway picks the deployment itself", name, url)
		default:
			return nil, fmt.Errorf("--target %q: %s serves no model of that name (models: %s)", name, url, strings.Join(models, ", "))
		}
	}
	return out, nil
}

// listModels returns the ids GET /v1/models lists.
func listModels(ctx context.Context, client *http.Client, url, apiKey string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/models: %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("GET /v1/models: %w", err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}
