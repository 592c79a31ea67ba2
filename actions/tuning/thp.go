package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Transparent huge pages: the "enabled" and "defrag" modes, each from the
// list the kernel prints ("always [madvise] never").

func init() {
	Register(Family{Name: "thp", List: listTHP, Resolve: resolveTHP})
}

var thpKnobs = []struct{ name, attr, risk, why string }{
	{"thp.enabled", "enabled", RiskMedium,
		"always speeds large-memory workloads (VMs, databases) at the cost of memory bloat; madvise leaves it to apps"},
	{"thp.defrag", "defrag", RiskMedium,
		"always/defer decide whether a fault may stall to compact memory; madvise/never avoid latency spikes"},
}

func listTHP(ctx context.Context, env *Env) []TunableInfo {
	var out []TunableInfo
	for _, t := range thpKnobs {
		info := TunableInfo{Name: t.name, Family: "thp", Type: TypeEnum, Risk: t.risk, Why: t.why}
		k := &thpKnob{env: env, name: t.name, attr: t.attr}
		if cur, all, err := k.list(); err != nil {
			info.Reason = reason(err)
		} else {
			info.Current, info.Allowed, info.Available = cur, all, true
		}
		out = append(out, info)
	}
	return out
}

func resolveTHP(ctx context.Context, env *Env, name, target string) (Knob, error) {
	for _, t := range thpKnobs {
		if t.name != name {
			continue
		}
		if target != "" {
			return nil, invalid("%s is machine-wide and takes no target", name)
		}
		k := &thpKnob{env: env, name: t.name, attr: t.attr}
		if _, _, err := k.list(); err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, ErrUnknownKnob
}

type thpKnob struct {
	env        *Env
	name, attr string
}

func (k *thpKnob) path() string {
	return filepath.Join(k.env.Sys, "kernel", "mm", "transparent_hugepage", k.attr)
}

func (k *thpKnob) list() (string, []string, error) {
	b, err := os.ReadFile(k.path())
	if err != nil {
		return "", nil, unavailable("no transparent huge pages in this kernel (%v)", err)
	}
	cur, all := bracketed(string(b))
	if cur == "" {
		return "", nil, fmt.Errorf("%s: cannot parse %q", k.name, strings.TrimSpace(string(b)))
	}
	return cur, all, nil
}

func (k *thpKnob) Key() string { return k.name }

func (k *thpKnob) Read(context.Context) (string, error) {
	cur, _, err := k.list()
	return cur, err
}

func (k *thpKnob) Validate(_ context.Context, value string) (string, error) {
	_, all, err := k.list()
	if err != nil {
		return "", err
	}
	return oneOf(k.name, value, all)
}

func (k *thpKnob) Write(_ context.Context, value string) error { return writeSysfs(k.path(), value) }

func (k *thpKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }
