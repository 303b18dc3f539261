package telemetry

import "github.com/prometheus/client_golang/prometheus"

// jobMetrics are the background jobs' and batches' own metrics; their
// requests count in the request metrics as every request does.
type jobMetrics struct {
	finished *prometheus.CounterVec // {kind, status}
	running  prometheus.Gauge
	batches  *prometheus.CounterVec // {status}
}

func newJobMetrics(reg *prometheus.Registry) *jobMetrics {
	j := &jobMetrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_jobs_finished_total",
			Help: "Background jobs this gateway saw end, by kind (job: one of its own; batch_line: a batch's line) and final status (succeeded, failed, cancelled, expired).",
		}, []string{"kind", "status"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "omnigate_jobs_running",
			Help: "Background jobs and batch lines this gateway is running now.",
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omnigate_batches_finished_total",
			Help: "Batches this gateway finalized, by final status (completed, failed, expired, cancelled).",
		}, []string{"status"}),
	}
	reg.MustRegister(j.finished, j.running, j.batches)
	return j
}

// JobFinished counts a job that ended with status; line: it is a batch's.
func (m *Metrics) JobFinished(line bool, status string) {
	kind := "job"
	if line {
		kind = "batch_line"
	}
	m.jobs.finished.WithLabelValues(kind, status).Inc()
}

// JobRunning counts a job starting (+1) or ending (-1) a run.
func (m *Metrics) JobRunning(delta int) { m.jobs.running.Add(float64(delta)) }

// BatchFinished counts a batch that ended with status.
func (m *Metrics) BatchFinished(status string) { m.jobs.batches.WithLabelValues(status).Inc() }
