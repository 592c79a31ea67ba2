package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/npllm/npllm/systemd/msgid"
)

func TestMoveAsideKeepsTheFileUnderATaggedTimeStampedName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "baselines.json")
	if err := os.WriteFile(p, []byte("[null]"), 0o600); err != nil {
		t.Fatal(err)
	}
	aside, err := MoveAside(p, "damaged")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aside, p+".damaged-") || !strings.HasSuffix(aside, "Z") {
		t.Fatalf("moved to %q", aside)
	}
	if b, err := os.ReadFile(aside); err != nil || string(b) != "[null]" {
		t.Fatalf("moved file: %q, %v", b, err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the original is still there: %v", err)
	}
	if _, err := MoveAside(p, "damaged"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("moving a missing file: %v", err)
	}
	attrs := Attrs(p, errors.New("bad json"))
	if len(attrs) != 5 || attrs[1] != "file" || attrs[2] != p || attrs[4] != "bad json" ||
		!strings.Contains(attrs[0].(interface{ String() string }).String(), msgid.StateMovedAside) {
		t.Fatalf("attrs %v", attrs)
	}
}
