package desktop

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/esiqveland/notify"
	"github.com/godbus/dbus/v5"
	"github.com/npllm/npllm/dbus/api"
)

// Escape makes text safe for notification bodies, which servers may parse
// as markup: a process named "<b>hog" is shown as written.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

// unescape undoes Escape for servers that show bodies as plain text.
func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&").Replace(s)
}

// plain strips control characters from text shown without markup
// (summaries, button labels).
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func urgencyOf(severity string) notify.Urgency {
	switch severity {
	case api.SeverityCritical:
		return notify.UrgencyCritical
	case api.SeverityInfo:
		return notify.UrgencyLow
	}
	return notify.UrgencyNormal
}

func texts(s *shown, severity, kind string, d map[string]dbus.Variant) (summary, body string) {
	comm := plain(s.target.comm)
	if len(s.alerts) > 1 {
		apps := uniq(s.apps)
		more := ""
		if len(apps) > 5 {
			apps, more = apps[:5], ", …"
		}
		for i := range apps {
			apps[i] = Escape(apps[i])
		}
		return fmt.Sprintf(burstKinds[kind], len(s.alerts)), strings.Join(apps, ", ") + more
	}
	body = Escape(api.String(d["summary"]))
	switch kind {
	case api.KindOOMKill:
		summary = "Out of memory: " + comm + " was killed"
	case api.KindProcessCrash:
		summary = comm + " crashed"
	case api.KindMemoryPressure:
		summary = "The system is short of memory"
	case api.KindMemoryLow:
		summary = "Memory is running out"
	case api.KindDiskFull:
		summary = "Disk almost full: " + plain(api.String(d["mount"]))
	case api.KindCPURunaway:
		summary = comm + " keeps a CPU busy"
	case api.KindAnomaly:
		summary = comm + " uses far more memory than usual"
	case api.KindUnitFailed:
		summary = plain(api.String(d["unit"])) + " failed"
	case api.KindTuningRegressed: // the body names the figures
		summary = "A tuning trial made things worse and was reverted"
	default:
		summary = "npllm: " + kind
	}
	return summary, body
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func iconFor(u notify.Urgency) string {
	switch u {
	case notify.UrgencyCritical:
		return "dialog-error"
	case notify.UrgencyLow:
		return "dialog-information"
	}
	return "dialog-warning"
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func detailsBody(a *api.Alert) string {
	var lines []string
	for _, m := range []map[string]dbus.Variant{a.Details, a.Private} {
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "summary" && k != "raised_ns" && k != "top" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, Escape(fmt.Sprintf("%s: %v", k, formatValue(m[k].Value()))))
		}
	}
	return strings.Join(lines, "\n")
}

func formatValue(v any) string {
	if f, ok := v.(float64); ok && f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprint(v)
}
