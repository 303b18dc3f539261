package telemetry

import "github.com/prometheus/client_golang/prometheus"

// TLSResults are the values of omnigate_tls_reloads_total's result label.
var TLSResults = [...]string{"ok", "error"}

func newTLSMetrics(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omnigate_tls_reloads_total",
		Help: "Certificate files loaded again after they changed, by the config key that names them (server.tls, server.admin_tls, server.grpc_tls, deployments.tls) and result: ok (in use from the next handshake), error (they did not load; the previous certificate stays).",
	}, []string{"config", "result"})
	reg.MustRegister(c)
	return c
}

// TLSFiles makes config's series (at zero), so that an alert on errors
// has a start to count from. config is a key of TLSReloaded.
func (m *Metrics) TLSFiles(config string) {
	for _, r := range TLSResults {
		m.tls.WithLabelValues(config, r)
	}
}

// TLSReloaded counts one load of config's certificate files after they
// changed; err is its error, nil when the new files are in use.
func (m *Metrics) TLSReloaded(config string, err error) {
	r := TLSResults[0]
	if err != nil {
		r = TLSResults[1]
	}
	m.tls.WithLabelValues(config, r).Inc()
}
