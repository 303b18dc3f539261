package admission

// The waiting room: per priority a rotation of tenants, per tenant a FIFO
// of waiters, all intrusive lists so a cancelled waiter leaves in O(1).
// The Queue's mutex guards everything here.

// waiterState is where a waiter stands; it changes under the Queue's
// mutex, and a change away from waiting is followed by a send on ready.
type waiterState uint8

const (
	waiting waiterState = iota
	granted
	refused // err says why
)

// waiter is one queued Acquire. Pooled: ready is made once and is empty
// whenever the waiter is in the pool.
type waiter struct {
	ready      chan struct{}
	tq         *tenantQueue
	prev, next *waiter
	state      waiterState
	err        error
}

// tenantQueue is one tenant's waiters at one priority.
type tenantQueue struct {
	t          *tenant
	lv         *level
	prio       Priority // of lv
	head, tail *waiter
	n          int
	prev, next *tenantQueue // in lv's rotation
	linked     bool
}

// tenant is a client with at least one waiter; it leaves the map (to a
// free list) with its last.
type tenant struct {
	name   string
	queued int // over all priorities
	q      [numPriorities]tenantQueue
}

// level is one priority's rotation: the tenant at head has the next
// place. The tenant just served, if it still waits, is held out of the
// rotation until the next place of this level, then rejoins at the tail
// behind the tenants that arrived meanwhile: a newcomer goes before the
// tenant that just had its turn, and every waiting tenant gets a place
// per round.
type level struct {
	n          int
	head, tail *tenantQueue
	held       *tenantQueue
}

func (lv *level) link(tq *tenantQueue) {
	tq.prev, tq.next, tq.linked = lv.tail, nil, true
	if lv.tail != nil {
		lv.tail.next = tq
	} else {
		lv.head = tq
	}
	lv.tail = tq
}

func (lv *level) unlink(tq *tenantQueue) {
	if tq.prev != nil {
		tq.prev.next = tq.next
	} else {
		lv.head = tq.next
	}
	if tq.next != nil {
		tq.next.prev = tq.prev
	} else {
		lv.tail = tq.prev
	}
	tq.prev, tq.next, tq.linked = nil, nil, false
}

// addTenantLocked adds the tenant called name, which has no waiter yet.
func (q *Queue) addTenantLocked(name string) *tenant {
	var t *tenant
	if n := len(q.free); n > 0 {
		t, q.free = q.free[n-1], q.free[:n-1]
	} else {
		t = new(tenant)
		for p := range t.q {
			t.q[p].t, t.q[p].lv, t.q[p].prio = t, &q.levels[p], Priority(p)
		}
	}
	t.name = name
	q.tenants[name] = t
	return t
}

// pushLocked queues w behind t's waiters of priority p.
func (q *Queue) pushLocked(w *waiter, t *tenant, p Priority) {
	tq := &t.q[p]
	w.tq, w.prev, w.next, w.state = tq, tq.tail, nil, waiting
	if tq.tail != nil {
		tq.tail.next = w
	} else {
		tq.head = w
	}
	tq.tail = w
	tq.n++
	t.queued++
	tq.lv.n++
	q.queued++
	if tq.n == 1 {
		tq.lv.link(tq)
	}
}

// removeLocked takes w out of its queue, and its tenant out of the
// rotation and the map when w was its last.
func (q *Queue) removeLocked(w *waiter) {
	tq := w.tq
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		tq.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		tq.tail = w.prev
	}
	w.tq, w.prev, w.next = nil, nil, nil
	tq.n--
	tq.t.queued--
	tq.lv.n--
	q.queued--
	if tq.n == 0 {
		if tq.lv.held == tq {
			tq.lv.held = nil
		} else {
			tq.lv.unlink(tq)
		}
	}
	if t := tq.t; t.queued == 0 {
		delete(q.tenants, t.name)
		t.name = ""
		if len(q.free) < maxFreeTenants {
			q.free = append(q.free, t)
		}
	}
}

// maxFreeTenants bounds the free list of tenant structs.
const maxFreeTenants = 256

// popLocked takes the waiter that has the next place: Interactive before
// Batch, the next tenant in rotation, its oldest waiter. Nil when none
// waits.
func (q *Queue) popLocked() *waiter {
	for p := range q.levels {
		lv := &q.levels[p]
		if lv.held != nil {
			lv.link(lv.held)
			lv.held = nil
		}
		tq := lv.head
		if tq == nil {
			continue
		}
		w := tq.head
		q.removeLocked(w)
		if tq.n > 0 {
			lv.unlink(tq)
			lv.held = tq
		}
		return w
	}
	return nil
}

// aheadLocked is how many waiters a place of priority p goes to first.
func (q *Queue) aheadLocked(p Priority) int {
	n := 0
	for i := range p + 1 {
		n += q.levels[i].n
	}
	return n
}

// victimLocked picks the waiter to refuse so a tenant under its share
// finds room in a full queue: the newest waiter, Batch before
// Interactive, of the tenant (other than name) with the most waiters, if
// that is more than share. O(waiting tenants); only a full queue pays it.
func (q *Queue) victimLocked(name string, share int) *waiter {
	var v *tenant
	for n, t := range q.tenants {
		if n != name && (v == nil || t.queued > v.queued) {
			v = t
		}
	}
	if v == nil || v.queued <= share {
		return nil
	}
	for p := numPriorities - 1; p >= 0; p-- {
		if w := v.q[p].tail; w != nil {
			return w
		}
	}
	return nil
}
