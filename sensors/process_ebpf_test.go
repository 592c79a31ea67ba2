package sensors

import (
	"encoding/binary"
	"testing"
)

func procRecord(typ byte, comm, filename, args string) []byte {
	n := shortRecSize
	if typ == 1 {
		n = recSize
	}
	b := make([]byte, n)
	b[offType] = typ
	binary.LittleEndian.PutUint32(b[offPID:], 4242)
	binary.LittleEndian.PutUint64(b[offKtime:], 5e9)
	binary.LittleEndian.PutUint64(b[offStart:], 4e9)
	copy(b[offComm:offComm+15], comm)
	if typ == 1 {
		copy(b[offFilename:offFilename+127], filename)
		binary.LittleEndian.PutUint32(b[offArgsLen:], uint32(copy(b[offArgs:], args)))
	}
	return b
}

// Short fork/exit records decode; a short exec record is refused.
func TestProcRecordsOfBothSizesDecode(t *testing.T) {
	d := &procDecoder{}
	ev, err := d.decode(procRecord(1, "true", "/bin/true", "true\x00-x\x00"))
	if err != nil || ev.Comm != "true" || ev.Filename != "/bin/true" || len(ev.Argv) != 2 || ev.Argv[1] != "-x" || ev.PID != 4242 {
		t.Fatalf("exec: %+v %v", ev, err)
	}
	for _, typ := range []byte{2, 3} {
		if ev, err := d.decode(procRecord(typ, "sh", "", "")); err != nil || ev.Comm != "sh" {
			t.Fatalf("type %d: %+v %v", typ, ev, err)
		}
	}
	if _, err := d.decode(procRecord(1, "x", "", "")[:shortRecSize]); err == nil {
		t.Fatal("an 88-byte exec record decoded")
	}
	if _, err := d.decode(procRecord(2, "x", "", "")[:shortRecSize-1]); err == nil {
		t.Fatal("an 87-byte record decoded")
	}
}

// Interned vs freshly allocated names, one run:
// go test -run '^$' -bench DecodeProc -benchmem ./sensors/
func BenchmarkDecodeProcExecInterned(b *testing.B) {
	rec := procRecord(1, "cc1", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "cc1\x00-quiet\x00x.c\x00")
	d := &procDecoder{}
	b.ReportAllocs()
	for range b.N {
		if _, err := d.decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeProcExecAllocated(b *testing.B) {
	rec := procRecord(1, "cc1", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "cc1\x00-quiet\x00x.c\x00")
	b.ReportAllocs()
	for range b.N {
		if _, err := decodeProcEvent(rec, func(b []byte) string { return cString(b) }); err != nil {
			b.Fatal(err)
		}
	}
}
