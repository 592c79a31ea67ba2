package ask

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckArgs: whatever a model sends as arguments, an accepted one is a
// compact JSON object within the cap that decodes into a map.
func FuzzCheckArgs(f *testing.F) {
	for _, s := range []string{"", "{}", `{"pid":42}`, `{"pid": 12`, `[1]`, `null`, `{"a":1,"a":2}`, `{"a":{"a":1,"a":2}}`,
		`{"pid":42} {}`, `{"x":"\u0000"}`, " {\n\"a\" : [1, 2]\t} ", `{"a":1}x`, `"str"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := checkArgs(ToolCall{Name: "t", Arguments: s}, 256)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(out, &m) != nil || m == nil || len(out) > 256 {
			t.Fatalf("accepted %q as %q", s, out)
		}
	})
}

// FuzzCleanText: nothing a terminal obeys survives, and valid text stays
// valid and otherwise unchanged.
func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J", "a\u009bb", "tab\tnl\n", "é€😀", "\x7f\x07\r", "\xc2\xa3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // deltas are decoded JSON strings: always valid
		}
		out := cleanText(s)
		for _, r := range out {
			if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("%q kept control %U", s, r)
			}
		}
		if !utf8.ValidString(out) || len(out) > len(s) {
			t.Fatalf("%q → %q", s, out)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }) && out != s {
			t.Fatalf("clean %q changed to %q", s, out)
		}
	})
}
