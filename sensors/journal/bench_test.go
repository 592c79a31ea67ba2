package journal

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/sensors"
)

func exampleExec() sensors.Event {
	return sensors.Event{Kind: api.KindProcessExec, PID: 4242, UID: 1000, HasUID: true,
		PPID: 1, Comm: "true", Filename: "/bin/true", Argv: []string{"/bin/true", "--flag"}, StartTime: 123456, CgroupID: 77}
}

// mixEvent is event i of a busy machine's journal: execs, forks, exits
// and TCP events of pids 2..32767. Kind "oom.kill" and pid 1 are left to
// the rare events a benchmark places itself.
func mixEvent(i int) sensors.Event {
	ev := exampleExec()
	ev.PID = uint32(2 + (i*7919)%32766)
	ev.Kind = [...]string{"process.exec", "process.fork", "process.exit", "tcp.connect", "tcp.close"}[i%5]
	return ev
}

// fill appends n events with rare ones (oom.kill of pid 1) at three
// evenly spread places.
func fill(tb testing.TB, j *Journal, n int) {
	for i := 0; i < n; i++ {
		ev := mixEvent(i)
		if i%(n/3) == n/6 {
			ev = sensors.Event{Kind: api.KindOOMKill, PID: 1, UID: 0, HasUID: true, Comm: "hog"}
		}
		if !j.Append(ev) {
			tb.Fatal("append refused")
		}
		if i%4096 == 4095 {
			j.Sync()
		}
	}
	j.Sync()
}

func writeBytes(tb testing.TB) uint64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	tb.Fatal("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkJournalWriteAmplification: bytes this process caused to be
// written to disk (/proc/self/io write_bytes: pages dirtied, counted once
// each time a clean page is dirtied) ÷ encoded event bytes, at 100, 1,000
// and 10,000 events/s with the default options, on the test's temporary
// directory (ext4 here). NPLLM_BENCH_SECONDS sets the time per rate
// (default 30). The file system's own journal (jbd2) is not counted.
func BenchmarkJournalWriteAmplification(b *testing.B) {
	secs := 30
	if s, err := strconv.Atoi(os.Getenv("NPLLM_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	for b.Loop() {
		for _, rate := range []int{100, 1000, 10000} {
			j, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			before := writeBytes(b)
			var encoded uint64
			start := time.Now()
			tick := time.NewTicker(10 * time.Millisecond)
			for i := 0; time.Since(start) < time.Duration(secs)*time.Second; {
				<-tick.C
				due := int(time.Since(start).Seconds() * float64(rate))
				for ; i < due; i++ {
					ev := mixEvent(i)
					p, _ := encode(&ev)
					encoded += uint64(len(p))
					j.Append(ev)
				}
			}
			tick.Stop()
			if err := j.Close(); err != nil {
				b.Fatal(err)
			}
			written := writeBytes(b) - before
			amp := float64(written) / float64(encoded)
			b.ReportMetric(amp, fmt.Sprintf("amp@%d/s", rate))
			b.Logf("%d events/s for %d s: %d B encoded, %d B written: %.2f×, %.1f KiB/s", rate, secs, encoded, written, amp, float64(written)/1024/float64(secs))
		}
	}
}

// BenchmarkAppendCommitVsJournalSize: per event, append + write + index +
// prune (batches of 1024) on journals holding 0, 100k and 500k events
// (the last at the cap, so every segment roll prunes one). Samples of 10k
// events, interleaved over 10 rounds; the process's CPU time (getrusage)
// rather than wall time, as other work on this shared machine stretches
// wall time at random. Reported: the median sample and the mean over all
// (the mean includes every segment roll and prune).
func BenchmarkAppendCommitVsJournalSize(b *testing.B) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for b.Loop() {
		sizes := []int{0, 100_000, 500_000}
		js := make([]*Journal, len(sizes))
		for k, n := range sizes {
			j, err := Open(b.TempDir(), Options{FlushEvents: 1 << 30, FlushInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			fill(b, j, n)
			js[k] = j
		}
		const sample = 10_000
		per := make([][]float64, len(sizes))
		for round := 0; round < 10; round++ {
			for k, j := range js {
				start := cpu()
				for i := 0; i < sample; i++ {
					j.Append(mixEvent(i))
					if i%1024 == 1023 {
						j.Sync()
					}
				}
				j.Sync()
				per[k] = append(per[k], float64((cpu()-start).Nanoseconds())/sample)
			}
		}
		mean := func(xs []float64) float64 {
			t := 0.0
			for _, x := range xs {
				t += x
			}
			return t / float64(len(xs))
		}
		med := func(xs []float64) float64 { c := slices.Clone(xs); slices.Sort(c); return c[len(c)/2] }
		for k, n := range sizes {
			b.ReportMetric(med(per[k]), fmt.Sprintf("cpu_ns/event@%dk", n/1000))
			b.Logf("journal of %dk events: CPU per event median %.0f ns (%.2f× empty), mean %.0f ns (%.2f× empty)",
				n/1000, med(per[k]), med(per[k])/med(per[0]), mean(per[k]), mean(per[k])/mean(per[0]))
		}
	}
}

// BenchmarkGetEventsFilteredVsJournalSize: a rare-kind query (3 oom.kill
// events in the journal) and a pid query (3 events of pid 1) from seq 0,
// on journals of 10k, 100k and 500k events, 300 interleaved rounds; p50.
// Also the time to open (rebuild the index of) the 500k journal and the
// heap its index takes.
func BenchmarkGetEventsFilteredVsJournalSize(b *testing.B) {
	for b.Loop() {
		sizes := []int{10_000, 100_000, 500_000}
		js := make([]*Journal, len(sizes))
		dirs := make([]string, len(sizes))
		for k, n := range sizes {
			dirs[k] = b.TempDir()
			j, err := Open(dirs[k], Options{})
			if err != nil {
				b.Fatal(err)
			}
			fill(b, j, n)
			js[k] = j
		}
		// Reopen the largest: the index is rebuilt from the files.
		js[2].Close()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		start := time.Now()
		j, err := Open(dirs[2], Options{})
		if err != nil {
			b.Fatal(err)
		}
		openTime := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		js[2] = j
		b.ReportMetric(float64(openTime.Milliseconds()), "open_ms@500k")
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/500_000, "index_B/event")
		b.Logf("open of the 500k journal: %s; index heap %.1f MiB", openTime, float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20))

		pid := uint32(1)
		queries := map[string]Filter{"kind": {Kinds: []string{"oom.kill"}}, "pid": {PID: &pid}}
		for _, name := range []string{"kind", "pid"} {
			times := make([][]time.Duration, len(sizes))
			for round := 0; round < 300; round++ {
				for k, j := range js {
					start := time.Now()
					_, evs, err := j.Query(0, 100, queries[name])
					times[k] = append(times[k], time.Since(start))
					if err != nil || len(evs) != 3 {
						b.Fatalf("%s query at %d: %d events, %v", name, sizes[k], len(evs), err)
					}
				}
			}
			p50 := func(k int) time.Duration { slices.Sort(times[k]); return times[k][len(times[k])/2] }
			small := p50(0)
			for k, n := range sizes {
				p := p50(k)
				b.ReportMetric(float64(p.Microseconds()), fmt.Sprintf("%s_µs@%dk", name, n/1000))
				b.Logf("%s query, journal of %dk: p50 %s (%.2f× the 10k journal)", name, n/1000, p, float64(p)/float64(small))
			}
		}
		for _, j := range js {
			j.Close()
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
