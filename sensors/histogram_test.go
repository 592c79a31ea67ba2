package sensors

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/npllm/npllm/dbus/testbus"
)

// The batch read of a per-CPU array sums every CPU of every key, as the
// key-by-key lookups did.
func TestReadPerCPUSumsMatchesKeyByKeyLookups(t *testing.T) {
	testbus.Privileged(t)
	const n = 2 * histBuckets
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: n})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, n)
	for k := range n {
		per := make([]uint64, cpus)
		for c := range per {
			per[c] = uint64(k*1000 + c + 1)
			want[k] += per[c]
		}
		if err := m.Put(uint32(k), per); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readPerCPUSums(m, n)
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		if got[k] != want[k] {
			t.Fatalf("key %d: %d, want %d", k, got[k], want[k])
		}
	}
}
