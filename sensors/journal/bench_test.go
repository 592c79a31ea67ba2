package journal

import (
	"testing"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

func exampleExec() sensors.Event {
	return sensors.Event{Kind: api.KindProcessExec, PID: 4242, UID: 1000, HasUID: true,
		PPID: 1, Comm: "true", Filename: "/bin/true", Argv: []string{"/bin/true", "--flag"}, StartTime: 123456, CgroupID: 77}
}

// BenchmarkAppendCommit measures the journal's cost per event: encode,
// bbolt put and the amortised commit (batches of 1024).
func BenchmarkAppendCommit(b *testing.B) {
	j, err := Open(b.TempDir(), Options{FlushEvents: 1 << 30, FlushInterval: 1 << 62})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ev := exampleExec()
	for i := 0; b.Loop(); i++ {
		j.Append(ev)
		if i%1024 == 1023 {
			j.Sync()
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	ev := exampleExec()
	for b.Loop() {
		encode(&ev)
	}
}
