package server_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/systemd/msgid"
)

// A baselines.json that cannot be trusted is moved aside with a
// timestamped name and logged; npllmd starts and serves with fresh ones.
func TestDamagedBaselinesFileIsMovedAsideAndNpllmdStartsHealthy(t *testing.T) {
	b := testbus.ForTest(t)
	state := filepath.Join(b.Dir, "state")
	os.MkdirAll(state, 0o700)
	path := filepath.Join(state, "baselines.json")
	if err := os.WriteFile(path, []byte("[null]"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := b.DaemonForTest(t, bin("npllmd"))
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	st, err := c.Status(context.Background())
	if err != nil || st.Health == "" {
		t.Fatalf("status after a damaged baselines.json: %v %+v", err, st)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(path + ".*-*")
	if len(aside) != 1 {
		t.Fatalf("moved-aside files %v, want one", aside)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("damaged file still in place: %v", err)
	}
	if log := d.Log(); !strings.Contains(log, msgid.StateMovedAside) || !strings.Contains(log, aside[0]) {
		t.Errorf("npllmd's log does not name the moved-aside file with its MESSAGE_ID:\n%s", log)
	}
	if _, err := c.GetBaseline(context.Background(), "anything"); api.ErrorName(err) != api.ErrInvalidArgument {
		t.Errorf("GetBaseline on fresh baselines: %v", err)
	}
}

// NaN passes every range check written as "v <= 0 || v > 100".
func TestNaNAndInfThresholdsAreRefusedFromTheFileAndFromConfigure(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "nan.toml")
	os.WriteFile(bad, []byte("[alerts]\ndisk_warning_percent = nan\n"), 0o644)
	out, err := exec.Command(bin("npllmd"), "--config="+bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "disk_warning_percent") {
		t.Fatalf("nan in the file: %v %s", err, out)
	}
	_, _, c := startDaemon(t)
	conn := c.Conn()
	before, err := c.GetConfiguration(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	obj := conn.Object(api.BusName, api.ObjectPath)
	for _, key := range []string{"disk_warning_percent", "anomaly_rss_factor", "memory_low_percent"} {
		for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			err := obj.Call(api.Interface+".Configure", 0, api.Options(map[string]any{key: v}), api.Options(nil)).Err
			if api.ErrorName(err) != api.ErrInvalidArgument || !strings.Contains(api.ErrorMessage(err), key) {
				t.Errorf("Configure %s=%v: %v, want InvalidArgument naming the key", key, v, err)
			}
		}
	}
	after, err := c.GetConfiguration(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range before {
		if fmt.Sprint(after[k]) != fmt.Sprint(v) {
			t.Errorf("%s changed from %v to %v", k, v, after[k])
		}
	}
}
