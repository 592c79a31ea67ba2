package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// hammerArgs: how a "hammer" helper loads npllmd.
type hammerArgs struct {
	Seconds float64  `json:"seconds"`
	Workers int      `json:"workers"` // concurrent calls on the one connection
	Kinds   []string `json:"kinds"`
}

// hammerResult: what one hammer helper saw.
type hammerResult struct {
	OK, Busy, Other int
	OtherErr        string
}

// runHardeningHelper runs the helper ops of the hardening tests; handled
// is false for ops it does not know.
func runHardeningHelper(conn *dbus.Conn, op, arg string) (value any, err error, handled bool) {
	c := client.NewClient(conn)
	ctx := context.Background()
	switch op {
	case "configure":
		// arg: JSON {"settings": {k: v}, "times": n}
		var a struct {
			Settings map[string]string
			Times    int
		}
		if err = json.Unmarshal([]byte(arg), &a); err != nil {
			return nil, err, true
		}
		settings := map[string]any{}
		for k, v := range a.Settings {
			settings[k] = v
		}
		for range max(a.Times, 1) {
			err = c.Configure(ctx, settings, client.CallOptions{})
		}
		return nil, err, true
	case "hammer":
		var a hammerArgs
		if err = json.Unmarshal([]byte(arg), &a); err != nil {
			return nil, err, true
		}
		var mu sync.Mutex
		var res hammerResult
		var wg sync.WaitGroup
		end := time.Now().Add(time.Duration(a.Seconds * float64(time.Second)))
		for range a.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					_, _, err := c.GetEventsWire(ctx, 0, 1000, client.EventFilter{Kinds: a.Kinds})
					mu.Lock()
					switch api.ErrorName(err) {
					case "":
						res.OK++
					case api.ErrBusy:
						res.Busy++
					default:
						res.Other++
						res.OtherErr = err.Error()
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return res, nil, true
	case "process-wire":
		var pid uint32
		json.Unmarshal([]byte(arg), &pid)
		var raw map[string]dbus.Variant
		err = conn.Object(api.BusName, api.ObjectPath).Call(api.Interface+".GetProcess", 0, pid).Store(&raw)
		keys := make([]string, 0, len(raw))
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, err, true
	case "syscall-pids":
		rows, err := c.GetSyscallStats(ctx, client.SyscallQuery{Limit: 1000})
		var uids []uint32
		for _, r := range rows {
			uids = append(uids, r.UID)
		}
		return uids, err, true
	case "fuzz":
		var a struct {
			Seconds float64
			Seed    uint64
		}
		if err = json.Unmarshal([]byte(arg), &a); err != nil {
			return nil, err, true
		}
		return fuzzMethods(conn, time.Duration(a.Seconds*float64(time.Second)), a.Seed), nil, true
	case "call-and-hang-up":
		// The reviewer's pattern: a privileged call from a connection that
		// is gone by the time npllmd looks at it; arg is the count.
		n, _ := strconv.Atoi(arg)
		for range n {
			hc, err := dbus.SystemBusPrivate()
			if err != nil {
				return nil, err, true
			}
			if err = hc.Auth(nil); err == nil {
				err = hc.Hello()
			}
			if err != nil {
				hc.Close()
				return nil, err, true
			}
			call := hc.Object(api.BusName, api.ObjectPath).Go(api.Interface+".SignalProcess", dbus.FlagNoReplyExpected, nil,
				uint32(1), uint64(0), "BOGUS", map[string]dbus.Variant{})
			if call.Err != nil {
				hc.Close()
				return nil, call.Err, true
			}
			hc.Close()
		}
		return nil, nil, true
	case "act-twice":
		// Two identical writes from one connection, each after a line on
		// stdin, each result printed at once (the test drives pkttyagent).
		var a actArgs
		if err = json.Unmarshal([]byte(arg), &a); err != nil {
			return nil, err, true
		}
		for range 2 {
			fmt.Fscanln(os.Stdin)
			err := c.CallInteractive(ctx, a.Method, a.dbusArgs()...).Err
			res := helperResult{}
			if err != nil {
				res.Error, res.Message = api.ErrorName(err), api.ErrorMessage(err)
			}
			json.NewEncoder(os.Stdout).Encode(res)
		}
		return nil, nil, true
	}
	return nil, nil, false
}

// logRecords parses slog's text lines (key=value, values quoted as Go
// strings when needed) with msg equal to msg.
func logRecords(log, msg string) []map[string][]string {
	var out []map[string][]string
	for _, line := range strings.Split(log, "\n") {
		rec := map[string][]string{}
		for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimLeft(rest, " ") {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				break
			}
			key := rest[:eq]
			rest = rest[eq+1:]
			var val string
			if strings.HasPrefix(rest, `"`) {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					break
				}
				val, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			} else {
				end := strings.IndexByte(rest, ' ')
				if end < 0 {
					end = len(rest)
				}
				val, rest = rest[:end], rest[end:]
			}
			rec[key] = append(rec[key], val)
		}
		if len(rec["msg"]) == 1 && rec["msg"][0] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func startBus(t *testing.T) *testbus.Bus { return testbus.ForTest(t) }

// startDaemonOn starts npllmd on b with a root client.
func startDaemonOn(t *testing.T, b *testbus.Bus, args ...string) (*testbus.Daemon, *client.Client) {
	t.Helper()
	d := b.DaemonForTest(t, bin("npllmd"), args...)
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return d, client.NewClient(conn)
}
