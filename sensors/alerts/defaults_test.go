package alerts

import (
	"path/filepath"
	"runtime"
	"testing"
)

// The packaged, documented config file states exactly the defaults.
func TestPackagedConfigStatesTheDefaults(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	c, err := LoadConfig(filepath.Join(filepath.Dir(here), "..", "..", "packaging", "npllmd.toml"))
	if err != nil {
		t.Fatal(err)
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
