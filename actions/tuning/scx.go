package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	godbus "github.com/godbus/dbus/v5"
)

// A sched_ext scheduler through scx_loader (org.scx.Loader), which runs the
// BPF scheduler itself; if it dies the kernel falls back to the default
// scheduler. "none" stops the running one.

const (
	scxName     = "org.scx.Loader"
	scxPath     = "/org/scx/Loader"
	scxIface    = "org.scx.Loader"
	scxKnobName = "sched_ext.scheduler"
)

func init() {
	Register(Family{Name: "sched_ext", List: listSCX, Resolve: resolveSCX})
}

func listSCX(ctx context.Context, env *Env) []TunableInfo {
	info := TunableInfo{Name: scxKnobName, Family: "sched_ext", Type: TypeEnum, Default: "none", Risk: RiskHigh,
		Why: "a BPF CPU scheduler tuned for gaming or latency (scx_lavd, scx_bpfland); the kernel falls back if it fails"}
	k, err := resolveSCX(ctx, env, scxKnobName, "")
	if err == nil {
		if info.Current, err = k.Read(ctx); err == nil {
			info.Allowed, err = k.(*scxKnob).supported()
			info.Available = err == nil
		}
	}
	if err != nil {
		info.Reason = reason(err)
	}
	return []TunableInfo{info}
}

func resolveSCX(_ context.Context, env *Env, name, target string) (Knob, error) {
	if name != scxKnobName {
		return nil, ErrUnknownKnob
	}
	if target != "" {
		return nil, invalid("%s is machine-wide and takes no target", name)
	}
	if _, err := os.Stat(filepath.Join(env.Sys, "kernel", "sched_ext", "state")); err != nil {
		return nil, unavailable("this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT, Linux ≥ 6.12)")
	}
	conn, err := busService(env, scxName)
	if err != nil {
		return nil, unavailable("%v (install scx_loader)", err)
	}
	return &scxKnob{obj: conn.Object(scxName, scxPath)}, nil
}

type scxKnob struct{ obj godbus.BusObject }

func (k *scxKnob) Key() string { return scxKnobName }

func (k *scxKnob) Read(context.Context) (string, error) {
	v, err := k.obj.GetProperty(scxIface + ".CurrentScheduler")
	if err != nil {
		return "", fmt.Errorf("scx_loader: %w", err)
	}
	s, _ := v.Value().(string)
	if s == "" || s == "unknown" {
		return "none", nil
	}
	return s, nil
}

func (k *scxKnob) supported() ([]string, error) {
	v, err := k.obj.GetProperty(scxIface + ".SupportedSchedulers")
	if err != nil {
		return nil, fmt.Errorf("scx_loader: %w", err)
	}
	list, _ := v.Value().([]string)
	return append([]string{"none"}, list...), nil
}

func (k *scxKnob) Validate(_ context.Context, value string) (string, error) {
	all, err := k.supported()
	if err != nil {
		return "", err
	}
	return oneOf(scxKnobName, value, all)
}

func (k *scxKnob) Write(ctx context.Context, value string) error {
	var call *godbus.Call
	switch cur, _ := k.Read(ctx); {
	case value == "none":
		call = k.obj.CallWithContext(ctx, scxIface+".StopScheduler", 0)
	case cur == "none":
		call = k.obj.CallWithContext(ctx, scxIface+".StartScheduler", 0, value, uint32(0))
	default:
		call = k.obj.CallWithContext(ctx, scxIface+".SwitchScheduler", 0, value, uint32(0))
	}
	if call.Err != nil {
		return fmt.Errorf("scx_loader: %s: %w", value, call.Err)
	}
	return nil
}

func (k *scxKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }
