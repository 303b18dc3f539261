package admin

import (
	"runtime"
	"runtime/debug"
)

// Build is what GET /admin/build shows: which binary is running.
type Build struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	// The VCS fields are what the go command stamped at build time; empty
	// (null) for a binary built outside a checkout or with -buildvcs=false.
	Revision string `json:"vcs_revision,omitempty"`
	Time     string `json:"vcs_time,omitempty"`
	Modified *bool  `json:"vcs_modified,omitempty"`
}

// ReadBuild reads the running binary's build information; version is the
// gateway's own version string.
func ReadBuild(version string) Build {
	b := Build{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			m := s.Value == "true"
			b.Modified = &m
		}
	}
	return b
}
