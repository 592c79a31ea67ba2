package alerts

import (
	"testing"
	"time"

	"github.com/npllm/npllm/sensors"
)

// A mount whose statfs hangs is neither cleared (it is still mounted) nor
// judged on the zeros of an unknown reading.
func TestAnUnknownDiskKeepsItsAlertAndRaisesNone(t *testing.T) {
	e := New(DefaultConfig(), nil, nil, nil)
	now := time.Unix(1000, 0)
	e.Machine(&sensors.Snapshot{Disks: []sensors.DiskUsage{{Mount: "/data", UsedPercent: 95}}}, now)
	e.Machine(&sensors.Snapshot{Disks: []sensors.DiskUsage{{Mount: "/data", Unknown: true}, {Mount: "/hung", Unknown: true}}}, now)
	if _, ok := e.Get("disk.full//data"); !ok {
		t.Error("an unknown reading cleared /data's alert")
	}
	if _, ok := e.Get("disk.full//hung"); ok {
		t.Error("an unknown reading raised an alert")
	}
}
