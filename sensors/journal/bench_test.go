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

// BenchmarkBuildAndEncode is a sensor's work per exec plus the journal's
// encoding: the typed event is built as decodeProcEvent builds it, then
// encoded (the untyped Fields map this replaced cost about twice as much).
func BenchmarkBuildAndEncode(b *testing.B) {
	b.ReportAllocs()
	pid, uid := uint32(4242), uint32(1000)
	for i := 0; i < b.N; i++ {
		ev := sensors.Event{Kind: api.KindProcessExec, PID: pid, UID: uid, HasUID: true, PPID: 1, Comm: "true", Filename: "/bin/true",
			Argv: []string{"/bin/true", "--flag"}, StartTime: uint64(123456) + uint64(i), CgroupID: 77}
		if _, err := encode(&ev); err != nil {
			b.Fatal(err)
		}
	}
}
