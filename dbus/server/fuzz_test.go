package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
)

// The method-table fuzzer: random values of each method's exact signature
// (and now and then a wrong one), sent to the real npllmd as root and as a
// user for NPLLM_FUZZ_DURATION (default 10 s; make fuzz: 5 min). Every
// reply must come within 10 s and every failure must be one of the API's
// named errors; npllmd must not log a panic and must still answer.

// namedErrors are the failures a caller may get.
var namedErrors = map[string]bool{
	api.ErrInvalidArgument: true, api.ErrNoSuchProcess: true, api.ErrProcessChanged: true,
	api.ErrNotAuthorized: true, api.ErrNotSupported: true, api.ErrBusy: true,
	api.ErrInvalidArgs: true, api.ErrInteractiveAuthorizationRequired: true,
	api.ErrNotFound: true, api.ErrConflict: true, // tuning trials
}

// fuzzWords are strings the methods know, mixed with random ones, so calls
// also get past the first check.
var fuzzWords = []string{"", "TERM", "KILL", "HUP", "STOP", "0", "-1", "cups.service", "npllmd.service", "../x.service",
	"best-effort", "idle", "realtime", "none", "start", "restart", "reload", "stop", "syscalls", "processes", "runq_latency",
	"block_io_latency", "read", "cpu", "memory", "io", "count", "errors", "time", "kind", "pid", "uid", "since_ns", "limit",
	"sort_by", "interactive", "automated", "disk_warning_percent", "memory_low_percent", "cpu_runaway_after", "oom.kill",
	"process.exec", "memory.pressure", "disk.full//", "self", "sh", "é", "\u202e", strings.Repeat("a", 1025)}

// (NUL and invalid UTF-8 cannot be sent: D-Bus strings exclude them, and
// both godbus and dbus-daemon refuse such a message.)

type fuzzGen struct{ r *rand.Rand }

func (g fuzzGen) str() string {
	if g.r.IntN(3) > 0 {
		return fuzzWords[g.r.IntN(len(fuzzWords))]
	}
	b := make([]byte, g.r.IntN(40))
	for i := range b {
		b[i] = byte(32 + g.r.IntN(95))
	}
	return string(b)
}

func (g fuzzGen) u64() uint64 {
	switch g.r.IntN(5) {
	case 0:
		return 0
	case 1:
		return uint64(g.r.IntN(5000))
	case 2:
		return math.MaxUint64 - uint64(g.r.IntN(3))
	}
	return g.r.Uint64()
}

// value returns a random Go value of the single complete type sig and the
// rest of sig.
func (g fuzzGen) value(sig string, depth int) (any, string) {
	c, rest := sig[0], sig[1:]
	switch c {
	case 'b':
		return g.r.IntN(2) == 0, rest
	case 'y':
		return byte(g.u64()), rest
	case 'n':
		return int16(g.u64()), rest
	case 'q':
		return uint16(g.u64()), rest
	case 'i':
		return int32(g.u64()), rest
	case 'u':
		return uint32(g.u64()), rest
	case 'x':
		return int64(g.u64()), rest
	case 't':
		return g.u64(), rest
	case 'd':
		return []float64{0, -1, 50, 1e308, math.NaN(), math.Inf(1), g.r.Float64() * 200}[g.r.IntN(7)], rest
	case 's':
		return g.str(), rest
	case 'o':
		return dbus.ObjectPath("/org/npllm"), rest
	case 'v':
		if depth > 5 {
			return dbus.MakeVariant(uint32(1)), rest
		}
		sigs := []string{"s", "u", "i", "t", "b", "d", "as", "au", "v", "a{sv}"}
		v, _ := g.value(sigs[g.r.IntN(len(sigs))], depth+1)
		return dbus.MakeVariant(v), rest
	case 'a':
		if strings.HasPrefix(rest, "{sv}") {
			m := map[string]dbus.Variant{}
			for range g.r.IntN(6) + map[bool]int{true: 30, false: 0}[g.r.IntN(20) == 0] {
				k := g.str()
				v, _ := g.value("v", depth+1)
				m[k] = v.(dbus.Variant)
			}
			return m, rest[4:]
		}
		elem := rest[:1] // the contract's arrays are of basic types
		n := g.r.IntN(5)
		if g.r.IntN(20) == 0 {
			n = 70
		}
		switch elem {
		case "s":
			out := make([]string, n)
			for i := range out {
				out[i] = g.str()
			}
			return out, rest[1:]
		case "u":
			out := make([]uint32, n)
			for i := range out {
				out[i] = uint32(g.u64())
			}
			return out, rest[1:]
		}
		return []string{}, rest[1:]
	}
	panic("fuzz: unsupported signature " + sig)
}

// args returns random arguments: of sig, or (one call in ten) of another
// signature.
func (g fuzzGen) args(sig string) []any {
	if g.r.IntN(10) == 0 {
		sig = []string{"", "s", "u", "uts", "ssa{sv}", "a{sv}a{sv}", "i"}[g.r.IntN(7)]
	}
	var out []any
	for rest := sig; rest != ""; {
		var v any
		v, rest = g.value(rest, 0)
		out = append(out, v)
	}
	return out
}

// fuzzReport is what one fuzzing loop saw.
type fuzzReport struct {
	Calls      int
	ByError    map[string]int
	Unexpected []string
	SlowestMS  int64
	Slowest    string
}

// fuzzMethods calls random methods on conn until d has passed.
func fuzzMethods(conn *dbus.Conn, d time.Duration, seed uint64) fuzzReport {
	c, _ := api.ParseContract()
	methods := c.MethodNames()
	sort.Strings(methods)
	rep := fuzzReport{ByError: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fuzzGen{rand.New(rand.NewPCG(seed+uint64(w), 7))}
			for time.Now().Before(end) {
				m := methods[g.r.IntN(len(methods))]
				args := g.args(c.InSignature[m])
				// Never a real process: a start time no process has, so
				// the fuzzer cannot signal or renice anything on this
				// machine (these calls end at ProcessChanged or before).
				if strings.HasPrefix(m, "SignalProcess") || strings.HasPrefix(m, "SetProcess") {
					if len(args) > 1 {
						if _, ok := args[1].(uint64); ok {
							args[1] = uint64(1)<<62 + g.u64()%1000
						}
					}
				}
				msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
					dbus.FieldPath: dbus.MakeVariant(api.ObjectPath), dbus.FieldInterface: dbus.MakeVariant(api.Interface),
					dbus.FieldMember: dbus.MakeVariant(m), dbus.FieldDestination: dbus.MakeVariant(api.BusName)}, Body: args}
				if len(args) > 0 {
					msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
				}
				if g.r.IntN(4) == 0 {
					msg.Flags = dbus.FlagAllowInteractiveAuthorization // no agent: polkit refuses
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				call := <-conn.SendWithContext(ctx, msg, make(chan *dbus.Call, 1)).Done
				took := time.Since(t0)
				cancel()
				mu.Lock()
				rep.Calls++
				if took.Milliseconds() > rep.SlowestMS {
					rep.SlowestMS, rep.Slowest = took.Milliseconds(), m
				}
				if call.Err != nil {
					name := api.ErrorName(call.Err)
					rep.ByError[name]++
					if !namedErrors[name] && len(rep.Unexpected) < 10 {
						rep.Unexpected = append(rep.Unexpected, fmt.Sprintf("%s%v → %v", m, args, call.Err))
					}
				} else {
					rep.ByError["ok"]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return rep
}

func fuzzDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("NPLLM_FUZZ_DURATION")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Second
}

func TestMethodTableFuzzAsRootAndAsAUser(t *testing.T) {
	b, d, c := startDaemon(t)
	alice, _ := users(t)
	dur := fuzzDuration()
	var userRep fuzzReport
	done := make(chan struct{})
	go func() {
		defer close(done)
		res := asUser(t, b, alice, "fuzz", map[string]any{"seconds": dur.Seconds(), "seed": time.Now().UnixNano()})
		json.Unmarshal(res.Value, &userRep)
	}()
	seed := uint64(time.Now().UnixNano())
	rootRep := fuzzMethods(c.Conn(), dur, seed)
	<-done
	for who, rep := range map[string]fuzzReport{"root": rootRep, "alice": userRep} {
		t.Logf("%s: %d calls, slowest %d ms (%s), %v", who, rep.Calls, rep.SlowestMS, rep.Slowest, rep.ByError)
		if rep.Calls < 10 {
			t.Errorf("%s made only %d calls", who, rep.Calls)
		}
		for _, u := range rep.Unexpected {
			t.Errorf("%s: not a named error: %s", who, u)
		}
	}
	t.Logf("root seed %d", seed)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("npllmd stopped answering: %v", err)
	}
	if log := d.Log(); strings.Contains(log, "panic") {
		t.Errorf("npllmd logged a panic:\n%s", log)
	}
}
