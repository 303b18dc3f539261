package sim

import (
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
// one request.
const (
	HeaderFail         = "X-Sim-Fail"          // a status code: answer with that error
	HeaderHang         = "X-Sim-Hang"          // "1": hang before the first token until the client leaves
	HeaderCutAfter     = "X-Sim-Cut-After"     // N: drop the connection after N stream chunks
	HeaderSlow         = "X-Sim-Slow"          // a duration added before every token
	HeaderErrorDialect = "X-Sim-Error-Dialect" // vllm, vllm-legacy, ollama, llamacpp, modelstudio
)

// Faults is the engine-wide fault injection, configured by flags.
type Faults struct {
	// Fail maps a status code to the fraction of requests answered with it.
	Fail map[int]float64
	// HangRate is the fraction of requests that hang before the first token.
	HangRate float64
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
	if f.HangRate < 0 || f.HangRate > 1 {
		errs = append(errs, fmt.Errorf("hang rate %g is outside [0, 1]", f.HangRate))
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
	fail     int // status to fail with; 0: none
	hang     bool
	cutAfter int
	slow     time.Duration
	dialect  string
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
	p := faultPlan{cutAfter: d.f.CutAfter, slow: d.f.Slow, dialect: d.f.ErrorDialect}
	if p.dialect == "" {
		p.dialect = DialectVLLM
	}
	if v := h.Get(HeaderErrorDialect); v != "" {
		if !validDialect(v) {
			return p, apierror.Invalid("", "%s: %q is not one of %s", HeaderErrorDialect, v, strings.Join(Dialects(), ", "))
		}
		p.dialect = v
	}
	if len(d.codes) > 0 || d.f.HangRate > 0 {
		d.mu.Lock()
		u, v := d.rng.Float64(), d.rng.Float64()
		d.mu.Unlock()
		cum := 0.0
		for _, c := range d.codes {
			cum += d.f.Fail[c]
			if u < cum {
				p.fail = c
				break
			}
		}
		p.hang = v < d.f.HangRate
	}
	if v := h.Get(HeaderFail); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 400 || c > 599 {
			return p, apierror.Invalid("", "%s: %q is not an error status (400-599)", HeaderFail, v)
		}
		p.fail = c
	}
	if v := h.Get(HeaderHang); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, apierror.Invalid("", "%s: %q is not a boolean", HeaderHang, v)
		}
		p.hang = b
	}
	if v := h.Get(HeaderCutAfter); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, apierror.Invalid("", "%s: %q is not a chunk count", HeaderCutAfter, v)
		}
		p.cutAfter = n
	}
	if v := h.Get(HeaderSlow); v != "" {
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			return p, apierror.Invalid("", "%s: %q is not a duration", HeaderSlow, v)
		}
		p.slow = dur
	}
	return p, nil
}

// injectedError is the error a failing request gets.
func injectedError(status int) *apierror.Error {
	msg := http.StatusText(status)
	if msg == "" {
		msg = "error"
	}
	e := apierror.New(status, "", "%s (injected by the simulator)", msg)
	e.Err = errInjected
	return e
}

var errInjected = errors.New("injected fault")
