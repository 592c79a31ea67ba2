package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// cpufreq: the governor and the energy/performance preference, written to
// every policy at once (a trial on half the CPUs measures nothing useful).
// Absent in most VMs: the knobs are then listed as unavailable.

func init() {
	Register(Family{Name: "cpufreq", List: listCPUFreq, Resolve: resolveCPUFreq})
}

var cpufreqKnobs = []struct{ name, attr, avail, risk, why string }{
	{"cpufreq.governor", "scaling_governor", "scaling_available_governors", RiskLow,
		"performance holds high clocks for latency-sensitive work; powersave/schedutil save energy"},
	{"cpufreq.epp", "energy_performance_preference", "energy_performance_available_preferences", RiskLow,
		"hint to the CPU's own frequency control: performance … power"},
}

func listCPUFreq(ctx context.Context, env *Env) []TunableInfo {
	var out []TunableInfo
	for _, c := range cpufreqKnobs {
		info := TunableInfo{Name: c.name, Family: "cpufreq", Type: TypeEnum, Risk: c.risk, Why: c.why}
		k := &cpufreqKnob{env: env, name: c.name, attr: c.attr, avail: c.avail}
		if all, err := k.allowed(); err != nil {
			info.Reason = reason(err)
		} else if cur, err := k.Read(ctx); err != nil {
			info.Reason = reason(err)
		} else {
			info.Current, info.Allowed, info.Available = cur, all, true
		}
		out = append(out, info)
	}
	return out
}

func resolveCPUFreq(_ context.Context, env *Env, name, target string) (Knob, error) {
	for _, c := range cpufreqKnobs {
		if c.name != name {
			continue
		}
		if target != "" {
			return nil, invalid("%s applies to every CPU policy and takes no target", name)
		}
		k := &cpufreqKnob{env: env, name: c.name, attr: c.attr, avail: c.avail}
		if _, err := k.allowed(); err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, ErrUnknownKnob
}

type cpufreqKnob struct {
	env               *Env
	name, attr, avail string
}

func (k *cpufreqKnob) Key() string { return k.name }

func (k *cpufreqKnob) policies() ([]string, error) {
	dirs, _ := filepath.Glob(filepath.Join(k.env.Sys, "devices", "system", "cpu", "cpufreq", "policy*"))
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, k.attr)); err == nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, unavailable("no cpufreq policy offers %s (no cpufreq driver, as in most VMs)", k.attr)
	}
	sort.Strings(out)
	return out, nil
}

// allowed is what every policy accepts.
func (k *cpufreqKnob) allowed() ([]string, error) {
	pols, err := k.policies()
	if err != nil {
		return nil, err
	}
	var common []string
	for i, p := range pols {
		b, err := os.ReadFile(filepath.Join(p, k.avail))
		if err != nil {
			return nil, unavailable("%s: %v", k.name, err)
		}
		f := strings.Fields(string(b))
		if i == 0 {
			common = f
			continue
		}
		common = slicesKeep(common, f)
	}
	return common, nil
}

func slicesKeep(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// Read returns the policies' common value; mixed values read as "mixed:…",
// which no write produces, so a trial sees a partial foreign change.
func (k *cpufreqKnob) Read(context.Context) (string, error) {
	pols, err := k.policies()
	if err != nil {
		return "", err
	}
	var vals []string
	for _, p := range pols {
		b, err := os.ReadFile(filepath.Join(p, k.attr))
		if err != nil {
			return "", fmt.Errorf("%s: %w", k.name, err)
		}
		vals = append(vals, strings.TrimSpace(string(b)))
	}
	for _, v := range vals {
		if v != vals[0] {
			return "mixed:" + strings.Join(vals, ","), nil
		}
	}
	return vals[0], nil
}

func (k *cpufreqKnob) Validate(ctx context.Context, value string) (string, error) {
	all, err := k.allowed()
	if err != nil {
		return "", err
	}
	if _, err := oneOf(k.name, value, all); err != nil {
		return "", err
	}
	if cur, err := k.Read(ctx); err == nil && strings.HasPrefix(cur, "mixed:") {
		return "", invalid("%s differs between CPU policies (%s); a trial could not restore it", k.name, cur)
	}
	return value, nil
}

func (k *cpufreqKnob) Write(_ context.Context, value string) error {
	pols, err := k.policies()
	if err != nil {
		return err
	}
	for _, p := range pols {
		if err := writeSysfs(filepath.Join(p, k.attr), value); err != nil {
			return err
		}
	}
	return nil
}

func (k *cpufreqKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }
