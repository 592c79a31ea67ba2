package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sysctlSpec is one allow-listed sysctl. Bounds are ours (tighter than the
// kernel's where a value would be absurd); Default is the kernel's.
type sysctlSpec struct {
	name     string
	min, max int64
	def      string
	risk     string
	why      string
}

var sysctls = []sysctlSpec{
	{"vm.swappiness", 0, 200, "60", RiskLow,
		"lower keeps anonymous memory (apps) in RAM longer and drops file cache first; higher swaps idle apps sooner"},
	{"vm.dirty_ratio", 1, 100, "20", RiskMedium,
		"percent of memory that may be dirty before writers block; lower smooths stalls on slow disks"},
	{"vm.dirty_background_ratio", 0, 100, "10", RiskLow,
		"percent of memory dirty before background writeback starts; lower starts flushing earlier"},
	{"vm.vfs_cache_pressure", 1, 1000, "100", RiskMedium,
		"higher reclaims dentry/inode caches sooner; lower keeps directory lookups cached"},
	{"vm.watermark_scale_factor", 1, 3000, "10", RiskMedium,
		"higher wakes kswapd earlier so allocations stall less under memory pressure"},
	{"kernel.sched_autogroup_enabled", 0, 1, "1", RiskLow,
		"1 groups tasks by session so a terminal build does not starve the desktop"},
}

func init() {
	Register(Family{Name: "sysctl", List: listSysctls, Resolve: resolveSysctl})
}

func sysctlPath(env *Env, name string) string {
	return filepath.Join(env.ProcSys, strings.ReplaceAll(name, ".", "/"))
}

func listSysctls(ctx context.Context, env *Env) []TunableInfo {
	out := make([]TunableInfo, 0, len(sysctls))
	for _, s := range sysctls {
		info := TunableInfo{Name: s.name, Family: "sysctl", Type: TypeInt, Min: s.min, Max: s.max,
			Default: s.def, Risk: s.risk, Why: s.why}
		k := &sysctlKnob{spec: s, path: sysctlPath(env, s.name)}
		if cur, err := k.Read(ctx); err != nil {
			info.Reason = reason(err)
		} else {
			info.Current, info.Available = cur, true
		}
		out = append(out, info)
	}
	return out
}

func resolveSysctl(ctx context.Context, env *Env, name, target string) (Knob, error) {
	for _, s := range sysctls {
		if s.name != name {
			continue
		}
		if target != "" {
			return nil, invalid("%s is machine-wide and takes no target", name)
		}
		k := &sysctlKnob{spec: s, path: sysctlPath(env, s.name), etc: env.Etc}
		if _, err := k.Read(ctx); err != nil {
			return nil, err
		}
		return k, nil
	}
	// Only names that look like sysctls are ours to refuse; the allow-list
	// is the point.
	if strings.HasPrefix(name, "vm.") || strings.HasPrefix(name, "kernel.") || strings.HasPrefix(name, "net.") ||
		strings.HasPrefix(name, "fs.") || strings.HasPrefix(name, "dev.") {
		return nil, fmt.Errorf("%w: sysctl %q is not on npllm's allow-list", ErrUnknownKnob, name)
	}
	return nil, ErrUnknownKnob
}

type sysctlKnob struct {
	spec sysctlSpec
	path string
	etc  string
}

func (k *sysctlKnob) Key() string { return k.spec.name }

func (k *sysctlKnob) Read(context.Context) (string, error) {
	b, err := os.ReadFile(k.path)
	if os.IsNotExist(err) {
		return "", unavailable("%s does not exist in this kernel", k.spec.name)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", k.spec.name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (k *sysctlKnob) Validate(_ context.Context, value string) (string, error) {
	n, err := parseBounded(k.spec.name, value, k.spec.min, k.spec.max)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(n, 10), nil
}

func (k *sysctlKnob) Write(_ context.Context, value string) error {
	return writeSysfs(k.path, value)
}

func (k *sysctlKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }

// writeSysfs writes an existing /proc/sys or /sys attribute (never creates).
func writeSysfs(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("write %s=%s: %w", path, value, err)
	}
	return f.Close()
}
