package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Fault-injection request headers; each overrides the engine's Faults for
// one request. Fail, Fail-HTML and OOM exclude each other (sent together,
// OOM wins over Fail-HTML and Fail-HTML over Fail); so do Hang and Stall
// (Stall wins).
const (
	HeaderFail         = "X-Sim-Fail"          // a status code: answer with that error
	HeaderFailHTML     = "X-Sim-Fail-HTML"     // a status code: answer with a proxy's HTML error page
	HeaderOOM          = "X-Sim-OOM"           // "1": answer as the dialect's engine reports running out of memory
	HeaderHang         = "X-Sim-Hang"          // "1": hang before the first token until the client leaves
	HeaderStall        = "X-Sim-Stall"         // "1": send 200 and the headers, then nothing until the client leaves
	HeaderRetryAfter   = "X-Sim-Retry-After"   // seconds: a Retry-After header on injected 429 and 503 answers
	HeaderCutAfter     = "X-Sim-Cut-After"     // N: drop the connection after N stream chunks
	HeaderSlow         = "X-Sim-Slow"          // a duration added before every token
	HeaderErrorDialect = "X-Sim-Error-Dialect" // vllm, vllm-legacy, ollama, llamacpp, modelstudio
)

// Faults is the engine-wide fault injection, configured by flags. A
// request draws at most one failure (Fail, FailHTMLRate, OOMRate: their
// rates add up to at most 1) and at most one of hanging and stalling.
type Faults struct {
	// Fail maps a status code to the fraction of requests answered with it.
	Fail map[int]float64
	// FailHTMLRate is the fraction of requests answered 502 with an HTML
	// page, as a proxy in front of an engine answers when the engine is gone.
	FailHTMLRate float64
	// OOMRate is the fraction of requests answered the way the dialect's
	// engine reports running out of GPU or KV-cache memory (see oom.go).
	OOMRate float64
	// HangRate is the fraction of requests that hang before the first token.
	HangRate float64
	// StallRate is the fraction of requests answered 200 with their
	// headers flushed (text/event-stream for a stream, application/json
	// otherwise) and then nothing, until the client leaves.
	StallRate float64
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) on
	// injected 429 and 503 answers; 0 sends none.
	RetryAfter time.Duration
	// CutAfter drops every stream's connection after that many chunks (0: off).
	CutAfter int
	// Slow is extra time before every token.
	Slow time.Duration
	// ErrorDialect is the shape errors are written in; default vllm.
	ErrorDialect string
	// Seed makes the random fault draws repeatable; 0 picks a random seed.
	Seed uint64
}

// Validate checks the rates, the dialect and the counts.
func (f Faults) Validate() error {
	var errs []error
	sum := 0.0
	for code, r := range f.Fail {
		if code < 400 || code > 599 {
			errs = append(errs, fmt.Errorf("fail: status %d is not an error status (400-599)", code))
		}
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("fail: rate %g for %d is outside [0, 1]", r, code))
		}
		sum += r
	}
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("fail: rates add up to %g, more than 1", sum))
	}
	for _, r := range []struct {
		name string
		rate float64
	}{{"fail-html", f.FailHTMLRate}, {"oom", f.OOMRate}, {"hang", f.HangRate}, {"stall", f.StallRate}} {
		if r.rate < 0 || r.rate > 1 {
			errs = append(errs, fmt.Errorf("%s rate %g is outside [0, 1]", r.name, r.rate))
		}
	}
	if all := sum + f.FailHTMLRate + f.OOMRate; sum <= 1+1e-9 && all > 1+1e-9 {
		errs = append(errs, fmt.Errorf("fail, fail-html and oom rates add up to %g, more than 1", all))
	}
	if both := f.HangRate + f.StallRate; both > 1+1e-9 {
		errs = append(errs, fmt.Errorf("hang and stall rates add up to %g, more than 1", both))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry-after %s is negative", f.RetryAfter))
	}
	if f.CutAfter < 0 {
		errs = append(errs, fmt.Errorf("cut-after %d is negative", f.CutAfter))
	}
	if f.Slow < 0 {
		errs = append(errs, fmt.Errorf("slow %s is negative", f.Slow))
	}
	if f.ErrorDialect != "" && !validDialect(f.ErrorDialect) {
		errs = append(errs, fmt.Errorf("error dialect %q is not one of %s", f.ErrorDialect, strings.Join(Dialects(), ", ")))
	}
	return errors.Join(errs...)
}

// ParseFailRates parses "503=0.2,500=0.05" into status → rate.
func ParseFailRates(s string) (map[int]float64, error) {
	out := map[int]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		code, rate, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("fail rate %q: want STATUS=RATE", part)
		}
		c, err := strconv.Atoi(strings.TrimSpace(code))
		if err != nil {
			return nil, fmt.Errorf("fail rate %q: status: %w", part, err)
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
		if err != nil {
			return nil, fmt.Errorf("fail rate %q: rate: %w", part, err)
		}
		out[c] = r
	}
	f := Faults{Fail: out}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// faultPlan is what one request suffers.
type faultPlan struct {
	fail       int  // status to fail with; 0: none
	failHTML   int  // status to fail with, as an HTML page; 0: none
	oom        bool // fail as the dialect's engine out of memory
	hang       bool
	stall      bool
	retryAfter time.Duration // Retry-After on injected 429 and 503 answers
	cutAfter   int
	slow       time.Duration
	dialect    string
}

// faultDice draws the random faults.
type faultDice struct {
	mu    sync.Mutex
	rng   *rand.Rand
	codes []int // Fail's keys, sorted, so draws are repeatable
	f     Faults
}

func newFaultDice(f Faults) *faultDice {
	seed := f.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	d := &faultDice{rng: rand.New(rand.NewPCG(seed, seed>>1|1)), f: f}
	for c := range f.Fail {
		d.codes = append(d.codes, c)
	}
	slices.Sort(d.codes)
	return d
}

// plan decides the faults of one request: the engine's rates, overridden by
// the request's X-Sim-* headers. A malformed header is a 400.
func (d *faultDice) plan(h http.Header) (faultPlan, error) {
	p := faultPlan{retryAfter: d.f.RetryAfter, cutAfter: d.f.CutAfter, slow: d.f.Slow, dialect: d.f.ErrorDialect}
	if p.dialect == "" {
		p.dialect = DialectVLLM
	}
	d.draw(&p)
	return p, p.override(h)
}

// draw decides the random faults: one draw picks at most one failure (the
// status codes in order, then an HTML page, then out of memory), another
// hanging or stalling.
func (d *faultDice) draw(p *faultPlan) {
	f := &d.f
	if len(d.codes) == 0 && f.FailHTMLRate == 0 && f.OOMRate == 0 && f.HangRate == 0 && f.StallRate == 0 {
		return
	}
	d.mu.Lock()
	u, v := d.rng.Float64(), d.rng.Float64()
	d.mu.Unlock()
	cum := 0.0
	for _, c := range d.codes {
		cum += f.Fail[c]
		if u < cum {
			p.fail = c
			break
		}
	}
	switch {
	case p.fail != 0:
	case u < cum+f.FailHTMLRate:
		p.failHTML = http.StatusBadGateway
	case u < cum+f.FailHTMLRate+f.OOMRate:
		p.oom = true
	}
	p.hang = v < f.HangRate
	p.stall = !p.hang && v < f.HangRate+f.StallRate
}

// override applies the request's X-Sim-* headers to the plan.
func (p *faultPlan) override(h http.Header) error {
	if v := h.Get(HeaderErrorDialect); v != "" {
		if !validDialect(v) {
			return apierror.Invalid("", "%s: %q is not one of %s", HeaderErrorDialect, v, strings.Join(Dialects(), ", "))
		}
		p.dialect = v
	}
	if c, ok, err := statusHeader(h, HeaderFail); err != nil {
		return err
	} else if ok {
		p.fail, p.failHTML, p.oom = c, 0, false
	}
	if c, ok, err := statusHeader(h, HeaderFailHTML); err != nil {
		return err
	} else if ok {
		p.fail, p.failHTML, p.oom = 0, c, false
	}
	if b, ok, err := boolHeader(h, HeaderOOM); err != nil {
		return err
	} else if ok {
		p.oom = b
		if b {
			p.fail, p.failHTML = 0, 0
		}
	}
	if b, ok, err := boolHeader(h, HeaderHang); err != nil {
		return err
	} else if ok {
		p.hang = b
		p.stall = p.stall && !b
	}
	if b, ok, err := boolHeader(h, HeaderStall); err != nil {
		return err
	} else if ok {
		p.stall = b
		p.hang = p.hang && !b
	}
	if v := h.Get(HeaderRetryAfter); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return apierror.Invalid("", "%s: %q is not a number of seconds", HeaderRetryAfter, v)
		}
		p.retryAfter = time.Duration(n) * time.Second
	}
	if v := h.Get(HeaderCutAfter); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return apierror.Invalid("", "%s: %q is not a chunk count", HeaderCutAfter, v)
		}
		p.cutAfter = n
	}
	if v := h.Get(HeaderSlow); v != "" {
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			return apierror.Invalid("", "%s: %q is not a duration", HeaderSlow, v)
		}
		p.slow = dur
	}
	return nil
}

// statusHeader reads an error status header; ok is false when it is absent.
func statusHeader(h http.Header, name string) (status int, ok bool, err error) {
	v := h.Get(name)
	if v == "" {
		return 0, false, nil
	}
	c, err := strconv.Atoi(v)
	if err != nil || c < 400 || c > 599 {
		return 0, false, apierror.Invalid("", "%s: %q is not an error status (400-599)", name, v)
	}
	return c, true, nil
}

// boolHeader reads a boolean header; ok is false when it is absent.
func boolHeader(h http.Header, name string) (b, ok bool, err error) {
	v := h.Get(name)
	if v == "" {
		return false, false, nil
	}
	b, err = strconv.ParseBool(v)
	if err != nil {
		return false, false, apierror.Invalid("", "%s: %q is not a boolean", name, v)
	}
	return b, true, nil
}

// failure answers a request its plan fails, and reports whether it did.
func (p *faultPlan) failure(w http.ResponseWriter, id string, stream bool) bool {
	switch {
	case p.fail != 0:
		writeError(w, p.dialect, id, injectedError(p.fail, p.retryAfter))
	case p.failHTML != 0:
		writeHTMLError(w, p.failHTML, p.retryAfter)
	case p.oom:
		writeOOM(w, p.dialect, id, stream)
	default:
		return false
	}
	return true
}

// inject answers a generation request its plan fails, hangs or stalls, and
// reports whether it did; the request then needs nothing more.
func (e *Engine) inject(ctx context.Context, w http.ResponseWriter, p faultPlan, id string, stream bool) bool {
	switch {
	case p.failure(w, id, stream):
	case p.hang:
		select {
		case <-ctx.Done():
		case <-e.closed:
			writeError(w, p.dialect, id, errClosed)
		}
	case p.stall:
		e.stall(ctx, w, stream)
	default:
		return false
	}
	return true
}

// stall sends 200 and the headers a real answer would start with, flushed,
// then nothing: the client sees a response begin and never continue. If the
// engine shuts down meanwhile the connection is dropped.
func (e *Engine) stall(ctx context.Context, w http.ResponseWriter, stream bool) {
	h := w.Header()
	if stream {
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	select {
	case <-ctx.Done():
	case <-e.closed:
		panic(http.ErrAbortHandler)
	}
}

// injectedError is the error a failing request gets; a 429 or 503 carries
// retryAfter.
func injectedError(status int, retryAfter time.Duration) *apierror.Error {
	msg := http.StatusText(status)
	if msg == "" {
		msg = "error"
	}
	e := apierror.New(status, "", "%s (injected by the simulator)", msg)
	e.Err = errInjected
	if retryable(status) {
		e.RetryAfter = retryAfter
	}
	return e
}

// retryable reports whether status is one a Retry-After goes with.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

var errInjected = errors.New("injected fault")

// writeHTMLError answers status with the HTML page nginx, in front of an
// engine, sends when the engine is not there: what a client gets from a
// proxy instead of the engine's JSON.
func writeHTMLError(w http.ResponseWriter, status int, retryAfter time.Duration) {
	b := htmlErrorPage(status)
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if retryable(status) {
		setRetryAfter(h, retryAfter)
	}
	w.WriteHeader(status)
	w.Write(b)
}

// htmlErrorPage is nginx's built-in error page for status, byte for byte
// (CRLF line ends, the server name in the footer).
func htmlErrorPage(status int) []byte {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	return []byte("<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
}

// setRetryAfter sets Retry-After to d in whole seconds, rounded up; d <= 0
// sets nothing.
func setRetryAfter(h http.Header, d time.Duration) {
	if d > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
}
