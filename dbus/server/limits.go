package server

import (
	"reflect"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// Argument sizes every call is held to before its handler runs (documented
// in the XML's header). A legitimate call is far below each.
const (
	maxStringBytes = 1024 // any string, anywhere in the arguments
	maxArrayLen    = 64   // any array (as, av, …)
	maxDictLen     = 32   // any a{sv}
	maxDepth       = 4    // variants inside variants
	// maxKinds bounds GetEvents' kind filter (distinct entries).
	maxKinds = 32
)

// Concurrency of the expensive read methods (they walk /proc, the journal
// or kernel maps) for callers other than root: per sender at once, and in
// all; a call beyond the total waits up to busyWait for a slot, one beyond
// its sender's share is refused (busyDelay late). Either refusal is Error.Busy.
// One at a time in all: with two at once on this 2-core machine, GetAll's
// p99 under eight hammering clients went from 30 ms to 83 ms
// (TestEightClientsHammeringGetEventsLeavePingAndGetAllFast); each call is
// short (GetEvents reads only what it returns, ≤ 1,000 events), so a queued
// one waits little.
const (
	perSenderCalls = 2
	totalCalls     = 1
	busyWait       = 500 * time.Millisecond
	busyDelay      = 100 * time.Millisecond
)

// expensive lists the methods whose cost grows with the machine (processes,
// journal size, kernel maps) rather than with their arguments.
var expensive = map[string]bool{
	"GetProcesses":     true,
	"GetProcess":       true,
	"GetEvents":        true,
	"GetSyscallStats":  true,
	"GetHistogram":     true,
	"GetCounters":      true, // the first call after a start reads this boot's journal
	"GetSensorDetails": true, // reads every eBPF sensor's per-CPU maps
	"GetTunables":      true, // walks /sys/block and cpufreq, asks systemd and other services
	"GetUnit":          true, // a round trip to systemd
}

// checkSizes walks a call's arguments and refuses one that is larger than
// the limits above, naming the limit.
func checkSizes(method string, body []any) *dbus.Error {
	for _, v := range body {
		if err := checkValue(method, reflect.ValueOf(v), 0); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(method string, v reflect.Value, depth int) *dbus.Error {
	if !v.IsValid() {
		return nil
	}
	if depth > maxDepth {
		return api.NewError(api.ErrInvalidArgument, "%s: arguments nest deeper than %d variants", method, maxDepth)
	}
	if vv, ok := v.Interface().(dbus.Variant); ok {
		return checkValue(method, reflect.ValueOf(vv.Value()), depth+1)
	}
	switch v.Kind() {
	case reflect.String:
		if v.Len() > maxStringBytes {
			return api.NewError(api.ErrInvalidArgument, "%s: a string argument is %d bytes, at most %d are accepted", method, v.Len(), maxStringBytes)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 { // ay: bounded as a string
			if v.Len() > maxStringBytes {
				return api.NewError(api.ErrInvalidArgument, "%s: a byte array argument is %d bytes, at most %d are accepted", method, v.Len(), maxStringBytes)
			}
			return nil
		}
		if v.Len() > maxArrayLen {
			return api.NewError(api.ErrInvalidArgument, "%s: an array argument has %d elements, at most %d are accepted", method, v.Len(), maxArrayLen)
		}
		for i := 0; i < v.Len(); i++ {
			if err := checkValue(method, v.Index(i), depth); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.Len() > maxDictLen {
			return api.NewError(api.ErrInvalidArgument, "%s: a dictionary argument has %d entries, at most %d are accepted", method, v.Len(), maxDictLen)
		}
		it := v.MapRange()
		for it.Next() {
			if err := checkValue(method, it.Key(), depth); err != nil {
				return err
			}
			if err := checkValue(method, it.Value(), depth); err != nil {
				return err
			}
		}
	case reflect.Interface, reflect.Pointer:
		return checkValue(method, v.Elem(), depth)
	}
	return nil
}

// limiter bounds the expensive calls in flight.
type limiter struct {
	total    chan struct{}
	mu       sync.Mutex
	bySender map[string]int
}

func newLimiter() *limiter {
	return &limiter{total: make(chan struct{}, totalCalls), bySender: map[string]int{}}
}

// acquire takes a slot for sender, or says why not; release gives it back.
func (l *limiter) acquire(method, sender string) *dbus.Error {
	l.mu.Lock()
	if l.bySender[sender] >= perSenderCalls {
		l.mu.Unlock()
		// A client that retries at once would spin: its Busy comes late.
		time.Sleep(busyDelay)
		return api.NewError(api.ErrBusy, "%s: this connection already has %d expensive calls in flight; wait for their replies", method, perSenderCalls)
	}
	l.bySender[sender]++
	l.mu.Unlock()
	t := time.NewTimer(busyWait)
	defer t.Stop()
	select {
	case l.total <- struct{}{}:
		return nil
	case <-t.C:
		l.drop(sender)
		return api.NewError(api.ErrBusy, "%s: npllmd is serving %d expensive calls already; try again shortly", method, totalCalls)
	}
}

func (l *limiter) release(sender string) {
	<-l.total
	l.drop(sender)
}

func (l *limiter) drop(sender string) {
	l.mu.Lock()
	if l.bySender[sender]--; l.bySender[sender] <= 0 {
		delete(l.bySender, sender)
	}
	l.mu.Unlock()
}

// Events non-root callers receive, in all: GetEvents answers share this
// budget so that large answers cannot fill the bus (dbus-daemon is one
// thread for everyone; 1,000-event answers in a loop queued root's Ping
// behind them for seconds). A call reserves its max_events before reading
// the journal, waiting up to eventBudgetWait for them (else Error.Busy),
// and gives back what it did not return.
const (
	eventRate       = 5000 // events a second
	eventBurst      = 2000
	eventBudgetWait = time.Second
)

// bucket is a token bucket; take may reserve ahead (tokens go negative)
// and then waits for the reservation.
type bucket struct {
	mu          sync.Mutex
	tokens      float64
	last        time.Time
	rate, burst float64
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{tokens: burst, last: time.Now(), rate: rate, burst: burst}
}

// give returns unspent tokens.
func (b *bucket) give(n float64) {
	b.mu.Lock()
	b.tokens = min(b.burst, b.tokens+n)
	b.mu.Unlock()
}

// take spends n tokens, waiting at most maxWait for them; false: not
// spent, the wait would be longer.
func (b *bucket) take(n float64, maxWait time.Duration) bool {
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	wait := time.Duration((n - b.tokens) / b.rate * float64(time.Second))
	if wait > maxWait {
		b.mu.Unlock()
		return false
	}
	b.tokens -= n
	b.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	return true
}
