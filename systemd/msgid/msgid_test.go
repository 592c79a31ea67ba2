package msgid_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/systemd/msgid"
)

// The catalog and the table must list the same ids, each once, each a
// 128-bit id; every alert kind has its own id.
func TestCatalogMatchesTable(t *testing.T) {
	data, err := os.ReadFile("../npllm.catalog")
	if err != nil {
		t.Fatal(err)
	}
	var inCatalog []string
	for _, m := range regexp.MustCompile(`(?m)^-- ([0-9a-f]{32})$`).FindAllStringSubmatch(string(data), -1) {
		inCatalog = append(inCatalog, m[1])
	}
	table := msgid.All()
	seen := map[string]bool{}
	for _, id := range table {
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || seen[id] {
			t.Errorf("id %q is malformed or repeated", id)
		}
		seen[id] = true
	}
	slices.Sort(inCatalog)
	slices.Sort(table)
	if !slices.Equal(inCatalog, table) {
		t.Errorf("catalog ids %v\n   table ids %v", inCatalog, table)
	}
	for _, k := range api.AlertKinds {
		if msgid.ForAlert(k) == msgid.AlertOther {
			t.Errorf("alert kind %s has no MESSAGE_ID", k)
		}
	}
	if msgid.ForAlert("no.such") != msgid.AlertOther {
		t.Error("unknown kind must map to AlertOther")
	}
}

// journalctl itself compiles the catalog into a scratch root and lists
// every entry (a syntax error would drop entries silently).
func TestJournalctlCompilesCatalog(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("no journalctl")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "usr/lib/systemd/catalog")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("../npllm.catalog")
	if err := os.WriteFile(filepath.Join(dir, "npllm.catalog"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("journalctl", "--root="+root, "--update-catalog").CombinedOutput(); err != nil {
		t.Fatalf("update-catalog: %v\n%s", err, out)
	}
	out, err := exec.Command("journalctl", "--root="+root, "--list-catalog").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range msgid.All() {
		if !strings.Contains(string(out), id+" npllm: ") {
			t.Errorf("journalctl does not list %s:\n%s", id, out)
		}
	}
}
