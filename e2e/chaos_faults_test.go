package e2e

import (
	"testing"
	"time"
)

// killAndRestart SIGKILLs the first replica a third of the way into each
// cycle of the load, measures how long it takes to leave rotation, checks
// that it gets no attempt once out, starts it again on its address and
// waits until it serves again by itself.
func killAndRestart(t *testing.T, s *scenarioRun) {
	r := s.replicas[0]
	per := s.traffic.requests / s.scale.kills
	var left, health, back []time.Duration
	for c := range s.scale.kills {
		s.load.waitDone(c*per + per/3)
		r.kill()
		l := s.waitLeave(t, r, time.Now(), true)
		left, health = append(left, l.after), append(health, l.health)
		if l.after > leaveRotationTarget+leaveRotationSlack {
			t.Errorf("cycle %d: the killed replica left rotation after %v, target %v", c+1, l.after, leaveRotationTarget)
		}
		if l.health > leaveRotationTarget+leaveRotationSlack {
			t.Errorf("cycle %d: the health check took the killed replica out after %v, target %v", c+1, l.health, leaveRotationTarget)
		}
		sent := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "")
		s.load.waitDone(c*per + 2*per/3)
		if n := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "") - sent; n > 0 {
			t.Errorf("cycle %d: the killed replica got %d attempts after it left rotation", c+1, n)
		}

		r.start(t)
		served := scrapeMetrics(t, s.gw).upstream(s.model, r.name, "200")
		took, ok := poll(20*time.Second, func() bool { return scrapeMetrics(t, s.gw).upstream(s.model, r.name, "200") > served })
		if !ok {
			t.Fatalf("cycle %d: the restarted replica served nothing in %v: %+v", c+1, took, s.row(t, r))
		}
		back = append(back, took)
	}
	s.leftRotation = spread(left) + " (first of breaker and health check; health check " + spread(health) + ")"
	s.note("%d kill(s); served again %s after the restart (its health check ends the breaker's cool-down)", s.scale.kills, spread(back))
}

// watchLeave measures how long the first replica, faulty from the start,
// takes to leave rotation under the load.
func watchLeave(t *testing.T, s *scenarioRun) {
	l := s.waitLeave(t, s.replicas[0], s.started, false)
	s.leftRotation = l.String()
}

// leave is how a replica left rotation: after how long, by what (the
// health check or the breaker), and when the health check took it out
// (0: it did not, the replica answers its probes).
type leave struct {
	after  time.Duration
	by     string
	health time.Duration
}

// String renders l for the table: "2ms (breaker; health check 150ms)".
func (l leave) String() string {
	s := l.after.Round(time.Millisecond).String() + " (" + l.by
	if l.health > 0 && l.by != "health check" {
		s += "; health check " + l.health.Round(time.Millisecond).String()
	}
	return s + ")"
}

// waitLeave waits until r is out of rotation, and with health until its
// health check has taken it out too, and says how long each took since
// from.
func (s *scenarioRun) waitLeave(t *testing.T, r *replica, from time.Time, health bool) leave {
	t.Helper()
	var l leave
	var row deploymentRow
	_, ok := poll(15*time.Second, func() bool {
		row = s.row(t, r)
		now := time.Since(from)
		if l.by == "" && outOfRotation(row) {
			l.after, l.by = now, "breaker"
			if row.Health == "down" {
				l.by = "health check"
			}
		}
		if l.health == 0 && row.Health == "down" {
			l.health = now
		}
		return l.by != "" && (!health || l.health > 0)
	})
	if !ok {
		t.Fatalf("%s still in rotation (or still passing its health check) after %v: %+v", r.name, time.Since(from), row)
	}
	return l
}
