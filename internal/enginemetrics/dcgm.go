package enginemetrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnigate/omnigate/internal/clock"
	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/poll"
)

// ErrNoGPUMetrics is a DCGM exporter answer that holds none of the fields
// read here (for the GPUs kept): not dcgm-exporter, or not those GPUs.
var ErrNoGPUMetrics = errors.New("no DCGM GPU metrics found")

// GPU is one GPU as NVIDIA's dcgm-exporter reported it, converted to base
// units. A field the exporter does not export (its counters CSV leaves
// it out, or the GPU does not support it) is NaN.
type GPU struct {
	ID string // the exporter's gpu label: the device index
	// Framebuffer memory in bytes (DCGM_FI_DEV_FB_USED, _FREE and
	// _RESERVED, which DCGM gives in MiB).
	MemUsed, MemFree, MemReserved float64
	// Utilization is DCGM_FI_DEV_GPU_UTIL (a percentage) as 0..1.
	Utilization float64
	// NVLinkTX and NVLinkRX are DCGM_FI_PROF_NVLINK_TX_BYTES and
	// _RX_BYTES: NVLink traffic, headers and payload, in bytes per
	// second over DCGM's sample period.
	NVLinkTX, NVLinkRX float64
	// NVLinkBandwidth is DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL, passed on
	// unconverted: DCGM documents it only as the bandwidth counter over
	// all lanes.
	NVLinkBandwidth float64
}

// GPUs is one DCGM scrape of a deployment's GPUs.
type GPUs struct {
	At time.Time
	// Until is when the scrape stops counting: three intervals after At,
	// as an engine scrape's stale_after defaults to.
	Until time.Time
	List  []GPU // by device index
}

// dcgmField is where a DCGM field goes in a GPU, and its scale to base
// units.
type dcgmField struct {
	set   func(g *GPU, v float64)
	scale float64
}

const mib = 1 << 20

// dcgmFields maps dcgm-exporter's metric names (the DCGM field names, as
// in its default-counters.csv and dcp-metrics-included.csv) onto GPU.
var dcgmFields = map[string]dcgmField{
	"DCGM_FI_DEV_FB_USED":                {func(g *GPU, v float64) { g.MemUsed = v }, mib},
	"DCGM_FI_DEV_FB_FREE":                {func(g *GPU, v float64) { g.MemFree = v }, mib},
	"DCGM_FI_DEV_FB_RESERVED":            {func(g *GPU, v float64) { g.MemReserved = v }, mib},
	"DCGM_FI_DEV_GPU_UTIL":               {func(g *GPU, v float64) { g.Utilization = min(v, 1) }, 0.01},
	"DCGM_FI_PROF_NVLINK_TX_BYTES":       {func(g *GPU, v float64) { g.NVLinkTX = v }, 1},
	"DCGM_FI_PROF_NVLINK_RX_BYTES":       {func(g *GPU, v float64) { g.NVLinkRX = v }, 1},
	"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": {func(g *GPU, v float64) { g.NVLinkBandwidth = v }, 1},
}

// dcgmBlank is where DCGM's "blank" values start (DCGM_FP64_BLANK is
// 2^47; the int64 blanks are near 2^63): an unsupported or not yet
// sampled field is exported as one of them, which no real reading of
// these fields comes near.
const dcgmBlank = 1 << 47

// ParseDCGM reads a dcgm-exporter /metrics answer (Prometheus text) into
// the GPUs it reports, keeping only those whose gpu label is in keep
// (nil or empty: all), at most config.MaxGPUs of them. at stamps the
// result.
//
// Series of a MIG instance (a GPU_I_ID label) are skipped: they describe
// a slice of a GPU, and the whole GPU's line is there too. A GPU label
// that is not a device index, a value that is negative, not finite or
// DCGM's blank, and a repeated (gpu, field) pair (the exporter repeats a
// shared GPU's line per pod in Kubernetes) are skipped too, so the
// labels re-exported stay the few the node has.
func ParseDCGM(b []byte, keep []string, at time.Time) (GPUs, error) {
	var list []GPU
	seen := map[string]bool{} // gpu and field names seen
	eachSample(b, func(name, labels []byte, v float64) {
		f, known := dcgmFields[string(name)]
		if !known || v < 0 || v >= dcgmBlank || math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		if mig, _ := labelValue(labels, "GPU_I_ID"); mig != "" {
			return
		}
		id, ok := labelValue(labels, "gpu")
		if !ok || !config.IsGPUIndex(id) || len(keep) > 0 && !slices.Contains(keep, id) {
			return
		}
		if k := id + "/" + string(name); seen[k] {
			return
		} else {
			seen[k] = true
		}
		i := slices.IndexFunc(list, func(g GPU) bool { return g.ID == id })
		if i < 0 {
			if len(list) >= config.MaxGPUs {
				return
			}
			nan := math.NaN()
			list = append(list, GPU{ID: id, MemUsed: nan, MemFree: nan, MemReserved: nan, Utilization: nan, NVLinkTX: nan, NVLinkRX: nan, NVLinkBandwidth: nan})
			i = len(list) - 1
		}
		f.set(&list[i], v*f.scale)
	})
	if len(list) == 0 {
		return GPUs{}, ErrNoGPUMetrics
	}
	slices.SortFunc(list, func(a, b GPU) int { return gpuIndex(a.ID) - gpuIndex(b.ID) })
	return GPUs{At: at, List: list}, nil
}

func gpuIndex(id string) int {
	n, _ := strconv.Atoi(id)
	return n
}

// labelValue returns the value of label key in a label set as
// parseSample returns it (`{a="x",b="y"}`), unescaped.
func labelValue(labels []byte, key string) (string, bool) {
	s := bytes.TrimSpace(bytes.Trim(labels, "{}"))
	for len(s) > 0 {
		eq := bytes.IndexByte(s, '=')
		if eq < 0 {
			return "", false
		}
		k := string(bytes.TrimSpace(bytes.TrimLeft(s[:eq], ", ")))
		s = bytes.TrimSpace(s[eq+1:])
		if len(s) == 0 || s[0] != '"' {
			return "", false
		}
		var v []byte
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch c = s[i]; c {
				case 'n':
					c = '\n'
				}
			}
			v = append(v, c)
		}
		if i >= len(s) {
			return "", false // unclosed quote
		}
		if k == key {
			return string(v), true
		}
		s = s[i+1:]
	}
	return "", false
}

// GPUStore holds each deployment's last DCGM scrape by identity (model
// and deployment name), across config snapshots. A deployment a reload
// removed keeps its entry (a pointer), never read again: readers ask only
// for the deployments of the current config. The zero value is ready; it
// is safe for concurrent use.
type GPUStore struct {
	mu sync.Mutex
	m  map[string]*atomic.Pointer[GPUs]
}

func (s *GPUStore) slot(key string) *atomic.Pointer[GPUs] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*atomic.Pointer[GPUs])
	}
	p, ok := s.m[key]
	if !ok {
		p = new(atomic.Pointer[GPUs])
		s.m[key] = p
	}
	return p
}

// Fresh returns the deployment key's last scrape while it counts at now,
// else nil.
func (s *GPUStore) Fresh(key string, now time.Time) *GPUs {
	s.mu.Lock()
	p := s.m[key]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if g := p.Load(); g != nil && now.Before(g.Until) {
		return g
	}
	return nil
}

// GPUTarget is one deployment's DCGM exporter to scrape.
type GPUTarget struct {
	Model, Deployment string
	// Key is the deployment's identity in the store (balance.Key).
	Key string
	// Get fetches the exporter's metrics page; the caller closes the
	// body.
	Get    func(ctx context.Context) (io.ReadCloser, error)
	Config config.GPUMetrics
}

// StartGPU begins scraping the DCGM exporters of targets into store: each
// at once, then every interval. Stop ends it.
func StartGPU(targets []GPUTarget, store *GPUStore, clk clock.Clock, log *slog.Logger) *Collector {
	c := &Collector{Loops: poll.New(clk), log: log}
	for _, t := range targets {
		slot := store.slot(t.Key)
		c.watch(t.Model, t.Deployment, "GPU metrics scrape", t.Config.Interval.D(), func(ctx context.Context) error {
			return c.scrapeGPU(ctx, t, slot)
		})
	}
	return c
}

// scrapeGPU fetches and parses one DCGM page into slot.
func (c *Collector) scrapeGPU(ctx context.Context, t GPUTarget, slot *atomic.Pointer[GPUs]) error {
	b, err := fetch(ctx, t.Get, t.Config.Timeout.D())
	if err != nil {
		return err
	}
	now := c.Now()
	g, err := ParseDCGM(b, t.Config.GPUs, now)
	if err != nil {
		return err
	}
	g.Until = now.Add(3 * t.Config.Interval.D())
	slot.Store(&g)
	return nil
}
