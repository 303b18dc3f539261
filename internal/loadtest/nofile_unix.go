//go:build unix

package loadtest

import "syscall"

// raiseNoFile lifts RLIMIT_NOFILE as far as allowed (children inherit it)
// and returns the limit now in force: 10,000 streams through a gateway
// need 20,000+ descriptors in one process.
func raiseNoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	want := max(lim.Max, 1<<17)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
		return uint64(want)
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Max, Max: lim.Max}) == nil {
		return uint64(lim.Max)
	}
	return uint64(lim.Cur)
}
