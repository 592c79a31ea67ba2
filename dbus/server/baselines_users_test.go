package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
)

// Helpers for the poisoning test, dispatched before TestMain.
func init() {
	switch os.Getenv("NPLLM_TEST_HELPER") {
	case "named-footprint":
		// Take another process name on every thread (the exit event names
		// whichever thread ends last), touch NPLLM_FOOTPRINT_MIB, exit.
		name := os.Getenv("NPLLM_NAME")
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			os.WriteFile("/proc/self/task/"+task.Name()+"/comm", []byte(name), 0)
		}
		mib, _ := strconv.Atoi(os.Getenv("NPLLM_FOOTPRINT_MIB"))
		b := make([]byte, mib<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		os.Exit(int(b[len(b)-1]))
	case "poison-storm":
		// As the attacker: N differently named programs, then 5 runs of a
		// 64 MiB program named like root's (NPLLM_ROOT_PROGRAM).
		n, _ := strconv.Atoi(os.Args[len(os.Args)-1])
		run := func(name string, mib int) {
			cmd := exec.Command(os.Args[0], "-")
			cmd.Env = append(os.Environ(), "NPLLM_TEST_HELPER=named-footprint", "NPLLM_NAME="+name, "NPLLM_FOOTPRINT_MIB="+strconv.Itoa(mib))
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, name, err)
				os.Exit(1)
			}
		}
		for i := range n {
			run(fmt.Sprintf("%s%d", os.Getenv("NPLLM_STORM_PREFIX"), i), 1)
		}
		for range 5 {
			run(os.Getenv("NPLLM_ROOT_PROGRAM"), 64)
		}
		os.Exit(0)
	case "my-baseline":
		conn, err := dbus.ConnectSystemBus()
		if err != nil {
			os.Exit(1)
		}
		bl, err := client.NewClient(conn).GetBaseline(context.Background(), os.Args[len(os.Args)-1])
		json.NewEncoder(os.Stdout).Encode(map[string]any{"error": api.ErrorName(err), "runs": bl.Runs})
		os.Exit(0)
	}
}

// A user running a few hundred differently named programs, and a huge one
// named like root's, through real execs and the eBPF exit events: root's
// baseline is neither changed nor evicted, and the user has their own.
func TestAUsersProgramsNeverChangeRootsBaselineOverTheBus(t *testing.T) {
	b, _, c := startDaemon(t)
	ctx := context.Background()
	// npllmd sees every process on the machine, other sessions' tests too:
	// a name of this test's own.
	program := fmt.Sprintf("rootdb%d", os.Getpid()%1000000)
	prefix := fmt.Sprintf("u%d_", os.Getpid()%1000000)
	for range 3 {
		cmd := exec.Command(bin("self"), "-")
		cmd.Env = append(os.Environ(), "NPLLM_TEST_HELPER=named-footprint", "NPLLM_NAME="+program, "NPLLM_FOOTPRINT_MIB=8")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	}
	var before api.Baseline
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if before, err = c.GetBaseline(ctx, program); err == nil && before.Runs == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("root's baseline after three runs: %v %v", err, before)
		}
	}
	alice, _ := users(t)
	storm := alice.Command(b, bin("self"), "300")
	storm.Env = append(storm.Env, "NPLLM_TEST_HELPER=poison-storm", "NPLLM_ROOT_PROGRAM="+program, "NPLLM_STORM_PREFIX="+prefix)
	if out, err := storm.CombinedOutput(); err != nil {
		t.Fatalf("alice's programs: %v %s", err, out)
	}
	mine := func(program string) (string, uint64) {
		cmd := alice.Command(b, bin("self"), program)
		cmd.Env = append(cmd.Env, "NPLLM_TEST_HELPER=my-baseline")
		out, err := cmd.Output()
		var res struct {
			Error string
			Runs  uint64
		}
		if err != nil || json.Unmarshal(out, &res) != nil {
			t.Fatalf("alice's GetBaseline: %v %s", err, out)
		}
		return res.Error, res.Runs
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if e, runs := mine(program); e == "" && runs == 5 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("alice's own baseline of %s: %q runs %d, want 5", program, e, runs)
		}
	}
	// Her differently named programs were learned as hers.
	if e, runs := mine(prefix + "217"); e != "" || runs != 1 {
		t.Errorf("alice's baseline of %s217: %q runs %d, want one run", prefix, e, runs)
	}
	if _, err := c.GetBaseline(ctx, prefix+"217"); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("root sees a baseline of alice's %s217: %v", prefix, err)
	}
	after, err := c.GetBaseline(ctx, program)
	if err != nil {
		t.Fatalf("root's baseline after alice's programs: %v", err)
	}
	if after.Runs != before.Runs || after.RSSP95Bytes != before.RSSP95Bytes || after.RSSEWMABytes != before.RSSEWMABytes {
		t.Errorf("root's baseline changed from %+v to %+v by another user's programs", before, after)
	}
}
