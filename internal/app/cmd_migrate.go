package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/omnigate/omnigate/internal/apierror"
	"github.com/omnigate/omnigate/internal/catalog"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/limits"
	"github.com/omnigate/omnigate/internal/request"
)

// runMigrate is `omnigate migrate`: requests validated against one model,
// checked against another, each passing, clamped or rejected as the
// gateway would; --rewrite writes them adapted to the target.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "--to MODEL [--from MODEL] [--config FILE] [--rewrite OUT] FILE", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: omnigate migrate --to MODEL [--from MODEL] [--config FILE] [--rewrite OUT] FILE

Reads requests (JSON lines: OpenAI chat or completions request bodies, Batch
API lines whose "body" is one, or the gateway's JSON access log with
logging.bodies on) and checks each against the limits of
MODEL as the gateway would: pass, clamped (which parameter, from what to
what: the target clamps) or rejected (the gateway's error). With --from, a
request the source model itself rejects is reported as such. --rewrite
writes every request the target can take, with the model field set to MODEL
and values past its limits clamped to them, in the input's format.

Flags:
`)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "the gateway's config `file` (default: OMNIGATE_CONFIG, else the built-in one)")
	to := fs.String("to", "", "the target `model` (name or alias)")
	from := fs.String("from", "", "the `model` the requests were validated against")
	rewrite := fs.String("rewrite", "", "write the adapted requests to `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.FromEnvAndFile(*cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	cat, err := catalog.New(cfg)
	if err != nil {
		return err
	}
	target, ok := cat.Lookup(*to)
	if !ok {
		return fmt.Errorf("--to: unknown model %q (models: %s)", *to, strings.Join(cat.Names(), ", "))
	}
	var source *catalog.Model
	if *from != "" {
		if source, ok = cat.Lookup(*from); !ok {
			return fmt.Errorf("--from: unknown model %q (models: %s)", *from, strings.Join(cat.Names(), ", "))
		}
	}
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	var out *bufio.Writer
	if *rewrite != "" {
		f, err := os.Create(*rewrite)
		if err != nil {
			return err
		}
		defer f.Close()
		out = bufio.NewWriter(f)
		defer out.Flush()
	}
	m := &migration{target: target, source: source, clamper: clamping(target)}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		verdict, adapted := m.check(line)
		fmt.Fprintf(stdout, "line %d: %s\n", n, verdict)
		if out != nil && adapted != nil {
			out.Write(adapted)
			out.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	m.summary(stdout)
	if out != nil {
		return out.Flush()
	}
	return nil
}

// migration counts the verdicts of one run.
type migration struct {
	target, source, clamper                   *catalog.Model
	pass, clamped, rejected, invalid, skipped int
	byParam                                   map[string]int // clamps and rejections, by parameter
}

// clamping is m with on_violation: clamp, for --rewrite.
func clamping(m *catalog.Model) *catalog.Model {
	c := *m
	c.Limits.OnViolation = config.OnViolationClamp
	return &c
}

// check returns the verdict on one input line and, when the target can
// take it, the line adapted to the target.
func (m *migration) check(line []byte) (string, []byte) {
	if m.byParam == nil {
		m.byParam = map[string]int{}
	}
	body, wrap := line, []byte(nil)
	var logged struct {
		Msg         string  `json:"msg"`
		RequestBody *string `json:"request_body"`
	}
	if json.Unmarshal(line, &logged) == nil && logged.Msg == "request" {
		// An access log line (logging.format json): its request_body,
		// when logging.bodies kept it whole.
		switch {
		case logged.RequestBody == nil:
			m.skipped++
			return "an access log line without its request body (logging.bodies is off): not checked", nil
		case !json.Valid([]byte(*logged.RequestBody)):
			m.skipped++
			return "the access log kept only the first 4 KiB of this body: not checked", nil
		}
		body = []byte(*logged.RequestBody)
	}
	var batch struct {
		CustomID *string         `json:"custom_id"`
		Body     json.RawMessage `json:"body"`
	}
	if json.Unmarshal(line, &batch) == nil && batch.CustomID != nil && len(batch.Body) > 0 {
		body, wrap = batch.Body, line
	}
	ep := request.Chat
	if !bytes.Contains(body, []byte(`"messages"`)) {
		ep = request.Completions
	}
	var r request.Request
	if err := request.Parse(ep, body, &r); err != nil {
		m.invalid++
		return "invalid request: " + apierror.From(err).Message, nil
	}
	if m.source != nil {
		if _, err := limits.Check(&r, m.source); err != nil {
			m.skipped++ // not the target's to check
			return "rejected by " + m.source.Name + " already: " + describe(err), nil
		}
	}
	clamp, err := limits.Check(&r, m.target)
	verdict := "pass"
	switch {
	case err != nil:
		m.rejected++
		m.byParam[apierror.From(err).Param]++
		verdict = "rejected: " + describe(err)
	case len(clamp) > 0:
		m.clamped++
		verdict = "clamped " + clamps(clamp)
		for _, c := range clamp {
			m.byParam[c.Param]++
		}
	default:
		m.pass++
	}
	// What --rewrite writes: the target's values, clamped even where the
	// target rejects (what cannot be clamped is not written).
	c, err := limits.Check(&r, m.clamper)
	if err != nil {
		return verdict, nil
	}
	if len(clamp) == 0 && len(c) > 0 {
		verdict += "; rewritten with " + clamps(c)
	}
	adapted := c.Apply(&r, body)
	adapted = r.Edit(adapted, request.Edit{Span: r.ModelSpan, Value: strconv.AppendQuote(nil, m.target.Name)})
	if wrap != nil {
		var obj map[string]json.RawMessage
		json.Unmarshal(wrap, &obj)
		obj["body"] = adapted
		adapted, _ = json.Marshal(obj)
	}
	return verdict, adapted
}

func describe(err error) string {
	e := apierror.From(err)
	if e.Param != "" {
		return e.Message + " (param " + e.Param + ")"
	}
	return e.Message
}

// clamps renders a clamp list: "max_tokens 8192→4096, temperature 2.5→2".
func clamps(c limits.Clamp) string {
	var b strings.Builder
	for i, x := range c {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s→%s", x.Param, strconv.FormatFloat(x.From, 'g', -1, 64), strconv.FormatFloat(x.To, 'g', -1, 64))
	}
	return b.String()
}

func (m *migration) summary(w io.Writer) {
	total := m.pass + m.clamped + m.rejected + m.invalid + m.skipped
	fmt.Fprintf(w, "\n%d requests against %s:\n", total, m.target.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  pass\t%d\n  clamped\t%d\n  rejected\t%d\n", m.pass, m.clamped, m.rejected)
	if m.skipped > 0 {
		fmt.Fprintf(tw, "  not checked\t%d\n", m.skipped)
	}
	if m.invalid > 0 {
		fmt.Fprintf(tw, "  invalid\t%d\n", m.invalid)
	}
	tw.Flush()
	if len(m.byParam) > 0 {
		fmt.Fprintln(w, "by parameter:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, p := range slices.Sorted(maps.Keys(m.byParam)) {
			name := p
			if name == "" {
				name = "(none)"
			}
			fmt.Fprintf(tw, "  %s\t%d\n", name, m.byParam[p])
		}
		tw.Flush()
	}
}
