package alerts

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/sensors"
)

// The cpu.runaway rule on the real process table, both variants (the eBPF
// task iterator and the procfs walk): a busy loop kept up past
// cpu_runaway_after raises an alert naming it, and its end clears it.
func TestCPURunawayOnTheRealProcessTable(t *testing.T) {
	testbus.Privileged(t) // the eBPF task iterator
	var reg sensors.Registration
	for _, r := range sensors.Registered() {
		if r.Name == "processes" {
			reg = r
		}
	}
	for _, v := range reg.Variants {
		t.Run(v.Name, func(t *testing.T) {
			run, err := v.Start(context.Background(), &sensors.Env{ProcRoot: "/proc"})
			if err != nil {
				t.Fatalf("variant %s: %v", v.Name, err)
			}
			defer run.Close()
			burn := exec.Command("sh", "-c", "while :; do :; done")
			if err := burn.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if burn.ProcessState == nil {
					burn.Process.Kill()
					burn.Wait()
				}
			}()
			cfg := DefaultConfig()
			// The machine is shared with other tests: a low bar, still
			// far above an idle process.
			cfg.RunawayCPUPercent = 15
			cfg.RunawayAfter = Duration(time.Second)
			cfg.ProcessSampleInterval = Duration(500 * time.Millisecond)
			e := New(cfg, nil, run.(ProcessLister), nil)
			id := api.KindCPURunaway + "/" + strconv.Itoa(burn.Process.Pid) + "/"
			raised := func() bool {
				for _, a := range e.Active() {
					if len(a.ID) > len(id) && a.ID[:len(id)] == id {
						return true
					}
				}
				return false
			}
			deadline := time.Now().Add(15 * time.Second)
			for !raised() {
				if time.Now().After(deadline) {
					t.Fatalf("no cpu.runaway for the busy loop; active: %+v", e.Active())
				}
				e.Machine(&sensors.Snapshot{}, time.Now())
				time.Sleep(600 * time.Millisecond)
			}
			burn.Process.Kill()
			burn.Wait()
			time.Sleep(600 * time.Millisecond)
			e.Machine(&sensors.Snapshot{}, time.Now())
			if raised() {
				t.Fatal("the alert outlived the busy loop")
			}
		})
	}
}
