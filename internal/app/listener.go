package app

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sparselog"
)

// connLimiter is a listener that bounds the client connections open at
// once: total in all, perClient from one remote IP address. A connection
// past a bound is closed as soon as it is accepted, before a byte is read;
// one that is kept holds its slot until http.Server reports it closed
// (connState), so the connection itself is not wrapped. It also logs accept
// errors (a full descriptor table first of all) as warnings, at most one
// per logEvery: http.Server only retries them, and logs them at its
// ErrorLog's level.
type connLimiter struct {
	net.Listener
	total, perClient int
	// exempt peers count only against total; loopback ones by default: a
	// sidecar proxy or a local load generator is many clients behind one
	// address.
	exempt func(netip.Addr) bool
	log    *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int

	acceptLog, refuseLog sparselog.Limiter
}

// logEvery is the least time between two warnings of one kind.
const logEvery = 10 * time.Second

// limitConns wraps ln; a bound of 0 is none.
func limitConns(ln net.Listener, total, perClient int, log *slog.Logger) *connLimiter {
	if total <= 0 {
		total = math.MaxInt
	}
	if perClient <= 0 {
		perClient = math.MaxInt
	}
	return &connLimiter{
		Listener: ln, total: total, perClient: perClient, log: log,
		exempt: netip.Addr.IsLoopback, byAddr: make(map[netip.Addr]int),
		acceptLog: sparselog.Limiter{Every: logEvery},
		refuseLog: sparselog.Limiter{Every: logEvery},
	}
}

// Accept returns the next connection within the bounds.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				if ok, dropped := l.acceptLog.Allow(); ok {
					l.log.Warn("accept failed", "err", err, "since_last_warning", dropped)
				}
			}
			return nil, err
		}
		addr := peerAddr(c)
		if why := l.admit(addr); why != "" {
			c.Close()
			if ok, dropped := l.refuseLog.Allow(); ok {
				l.log.Warn("connection refused", "client", addr.String(), "reason", why, "since_last_warning", dropped)
			}
			continue
		}
		return c, nil
	}
}

// admit counts a new connection from addr, or says which bound it passes.
func (l *connLimiter) admit(addr netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total {
		return "server.max_conns reached"
	}
	counted := addr.IsValid() && !l.exempt(addr)
	if counted && l.byAddr[addr] >= l.perClient {
		return "server.max_conns_per_client reached"
	}
	l.open++
	if counted {
		l.byAddr[addr]++
	}
	return ""
}

func (l *connLimiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if addr.IsValid() && !l.exempt(addr) {
		if n := l.byAddr[addr] - 1; n > 0 {
			l.byAddr[addr] = n
		} else {
			delete(l.byAddr, addr)
		}
	}
}

// peerAddr is the remote IP of c, IPv4-mapped addresses unmapped; the zero
// Addr for a peer without one (a Unix socket), which counts only against
// the total.
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// connState is http.Server's ConnState hook: a connection closed or taken
// over by its handler gives its slot back. Each connection reaches one of
// the two once.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		l.release(peerAddr(c))
	}
}

// checkOpen refuses to serve the API beyond loopback with no API keys
// (a key store counts as keys, even empty: keys may come into it at any
// time), unless auth.open says to: anyone who reached it could use every
// model.
func checkOpen(cfg *config.Config) error {
	if len(cfg.Auth.Keys) > 0 || cfg.Auth.Store.Kind == config.KeyStorePostgres || cfg.Auth.Open {
		return nil
	}
	for _, l := range []struct{ key, addr string }{{"server.addr", cfg.Server.Addr}, {"server.grpc_addr", cfg.Server.GRPCAddr}} {
		if l.addr == config.GRPCOff {
			continue
		}
		if err := checkLoopback(l.addr); err != nil {
			return fmt.Errorf("%s %q is beyond loopback, auth.keys is empty and auth.store is none: anyone who reaches it could use every model; "+
				"add keys (omnigate keys new), listen on 127.0.0.1, or set auth.open: true", l.key, l.addr)
		}
	}
	return nil
}

// checkLoopback accepts host:port whose host is localhost or a loopback IP
// (127.0.0.0/8, ::1). Any other name is refused rather than resolved: a
// name can resolve to other addresses tomorrow.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if config.IsLoopback(addr) {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("%q is not a loopback address (%s); use 127.0.0.1, [::1] or localhost", addr, host)
}

var _ net.Listener = (*connLimiter)(nil)
