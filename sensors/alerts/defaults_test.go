package alerts

import (
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/npllm/npllm/sensors"
)

// The packaged, documented config file states exactly the defaults.
func TestPackagedConfigStatesTheDefaults(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "packaging", "npllmd.toml")
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Alerts
	if f.Disks != (sensors.DiskOptions{}) {
		t.Errorf("packaging/npllmd.toml's [disks] says %+v, the default is the zero value %+v", f.Disks, sensors.DiskOptions{})
	}
	// Every [disks] key is written out, so the file documents them all.
	var raw map[string]map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		t.Fatal(err)
	}
	dt := reflect.TypeOf(sensors.DiskOptions{})
	for i := 0; i < dt.NumField(); i++ {
		if _, ok := raw["disks"][dt.Field(i).Tag.Get("toml")]; !ok {
			t.Errorf("packaging/npllmd.toml does not state [disks] %s", dt.Field(i).Tag.Get("toml"))
		}
	}
	if c != DefaultConfig() {
		t.Errorf("packaging/npllmd.toml says %+v, the code's defaults are %+v", c, DefaultConfig())
	}
	for _, k := range Keys() {
		if _, ok := c.Values()[k]; !ok {
			t.Errorf("key %s", k)
		}
	}
}
