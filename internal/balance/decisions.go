package balance

import (
	"sync"
	"sync/atomic"
	"time"
)

// Decision is one sampled pick, for the status API: the candidates'
// scores and the winner.
type Decision struct {
	At         time.Time
	Chosen     string
	Candidates []Scored
}

// Scored is one candidate of a Decision.
type Scored struct {
	Deployment string
	Score      float64
	Load       float64 // requests per unit of weight
}

// Decisions keeps the last few picks, sampled at most every
// decisionEvery so that recording costs nothing on the common path.
type Decisions struct {
	next atomic.Int64 // Unix nanoseconds before which nothing is recorded
	mu   sync.Mutex
	ring [decisionsKept]Decision
	n    int // decisions recorded in all
}

const (
	decisionsKept = 8
	decisionEvery = 250 * time.Millisecond
	// decisionCandidates bounds the candidates kept per decision.
	decisionCandidates = 16
)

func (l *Decisions) note(now int64, pool []*Deployment, cands []candidate, chosen int) {
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(decisionEvery)) {
		return
	}
	d := Decision{At: time.Unix(0, now), Chosen: pool[chosen].Config.Name, Candidates: make([]Scored, 0, min(len(cands), decisionCandidates))}
	for _, x := range cands[:min(len(cands), decisionCandidates)] {
		d.Candidates = append(d.Candidates, Scored{Deployment: pool[x.i].Config.Name, Score: x.score, Load: x.load})
	}
	l.mu.Lock()
	l.ring[l.n%decisionsKept] = d
	l.n++
	l.mu.Unlock()
}

func (l *Decisions) recent() []Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Decision, 0, min(l.n, decisionsKept))
	for k := l.n - 1; k >= 0 && k >= l.n-decisionsKept; k-- {
		out = append(out, l.ring[k%decisionsKept])
	}
	return out
}
