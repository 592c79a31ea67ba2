package sensors

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// readProcFile returns the whole file whatever the buffer it starts with,
// and the open error of a missing one.
func TestReadProcFileGrowsItsBufferAndReportsMissingFiles(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, start := range []int{0, 1, 2048, 16000, 20000} {
		got, err := readProcFile(p, make([]byte, 0, start))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("buffer of %d: %d bytes, %v", start, len(got), err)
		}
	}
	if _, err := readProcFile(filepath.Join(t.TempDir(), "gone"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	self, err := readProcFile("/proc/self/stat", nil)
	if err != nil || !bytes.Contains(self, []byte(") ")) {
		t.Fatalf("/proc/self/stat: %q, %v", self, err)
	}
}
