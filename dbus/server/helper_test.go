package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// binDir holds npllmd, npllmctl and a copy of this test binary ("self"),
// readable by the unprivileged test users.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv("NPLLM_TEST_HELPER") == "sleep" {
		// A victim process with several threads (Go's runtime starts them).
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	if op := os.Getenv("NPLLM_TEST_HELPER"); op == "hog" || op == "flock-fail" || op == "footprint" || op == "thrash" {
		os.Exit(runKernelHelper(op))
	}
	if op := os.Getenv("NPLLM_TEST_HELPER"); op != "" {
		os.Exit(runHelper(op, os.Args[len(os.Args)-1]))
	}
	testbus.RunWithBinaries(m, &binDir, "./cmd/npllmd", "./cmd/npllmctl")
}

func bin(name string) string { return filepath.Join(binDir, name) }

// helperResult is what a helper process prints.
type helperResult struct {
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// runHelper performs one bus operation as whatever user runs it.
func runHelper(op, arg string) int {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	obj := conn.Object(api.BusName, api.ObjectPath)
	var value any
	switch op {
	case "getall":
		var all map[string]dbus.Variant
		err = obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, api.Interface).Store(&all)
		value = api.Plain(all)
	case "getprocesses":
		var procs []map[string]dbus.Variant
		err = obj.Call(api.Interface+".GetProcesses", 0, map[string]dbus.Variant{"limit": dbus.MakeVariant(uint32(0))}).Store(&procs)
		value = api.Plain(procs)
	case "own":
		var reply dbus.RequestNameReply
		reply, err = conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue)
		value = reply
	case "foreign-interface":
		err = obj.Call("org.npllm.NotOurs.Frobnicate", 0).Err
	case "act", "act-interactive", "act-after-stdin":
		// arg: JSON {"method": M, "pid": P, "start": S, "value": V, "level": L}
		var a actArgs
		if err = json.Unmarshal([]byte(arg), &a); err != nil {
			break
		}
		if op == "act-after-stdin" {
			fmt.Fscanln(os.Stdin)
		}
		client := client.NewClient(conn)
		args := a.dbusArgs()
		if op == "act" {
			err = obj.Call(api.Interface+"."+a.Method, 0, args...).Err
		} else {
			err = client.CallInteractive(context.Background(), a.Method, args...).Err
		}
	default:
		var handled bool
		if value, err, handled = runHardeningHelper(conn, op, arg); !handled {
			err = fmt.Errorf("unknown helper op %q (arg %q)", op, arg)
		}
	}
	res := helperResult{}
	if err != nil {
		res.Error, res.Message = api.ErrorName(err), api.ErrorMessage(err)
	}
	res.Value, _ = json.Marshal(value)
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// actArgs describes one privileged call for a helper.
type actArgs struct {
	Method string `json:"method"`
	PID    uint32 `json:"pid"`
	Start  uint64 `json:"start"`
	Value  string `json:"value"` // signal, nice, I/O class, or unit
	Level  int32  `json:"level"` // I/O level, or the verb's index for ManageUnit
	Verb   string `json:"verb"`
	// Automated adds options["automated"] = true (agent-* actions).
	Automated bool `json:"automated"`
}

func (a actArgs) dbusArgs() []any {
	none := map[string]dbus.Variant{}
	if a.Automated {
		none["automated"] = dbus.MakeVariant(true)
	}
	switch a.Method {
	case "SetProcessPriority":
		n, _ := strconv.Atoi(a.Value)
		return []any{a.PID, a.Start, int32(n), none}
	case "SetProcessIOPriority":
		return []any{a.PID, a.Start, a.Value, a.Level, none}
	case "ManageUnit":
		return []any{a.Value, a.Verb, none}
	case "SetSensorEnabled":
		return []any{a.Value, a.Verb == "on", none}
	case "StartTrial":
		return []any{map[string]dbus.Variant{"vm.swappiness": dbus.MakeVariant(a.Value)}, none}
	default:
		return []any{a.PID, a.Start, a.Value, none}
	}
}

// asUser runs a helper op as u on b and decodes its result.
func asUser(t *testing.T, b *testbus.Bus, u testbus.User, op string, arg ...any) helperResult {
	t.Helper()
	cmd := helperCmd(b, u, op, arg...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("helper %s as %s: %v\n%s", op, u.Name, err, stderr)
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper %s output %q: %v", op, out, err)
	}
	return res
}

// helperCmd prepares a helper process as u; arg, if any, is passed as JSON.
func helperCmd(b *testbus.Bus, u testbus.User, op string, arg ...any) *exec.Cmd {
	a := "-"
	if len(arg) > 0 {
		data, _ := json.Marshal(arg[0])
		a = string(data)
	}
	cmd := u.Command(b, bin("self"), a)
	cmd.Env = append(cmd.Env, "NPLLM_TEST_HELPER="+op)
	return cmd
}

func jsonUnmarshal(s string, v any) error {
	return json.NewDecoder(strings.NewReader(s)).Decode(v)
}
