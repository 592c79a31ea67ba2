package tuning

import (
	"context"
	"fmt"
	"sync"

	godbus "github.com/godbus/dbus/v5"
)

// power-profiles-daemon's profile, taken through HoldProfile: the hold is
// tied to our bus connection, so if npllmd dies the profile returns by
// itself, and a revert is a ReleaseProfile, not a write.

const (
	ppdName     = "net.hadess.PowerProfiles"
	ppdPath     = "/net/hadess/PowerProfiles"
	ppdIface    = "net.hadess.PowerProfiles"
	ppdKnobName = "power.profile"
)

func init() {
	Register(Family{Name: "power", List: listPPD, Resolve: resolvePPD})
}

func listPPD(ctx context.Context, env *Env) []TunableInfo {
	info := TunableInfo{Name: ppdKnobName, Family: "power", Type: TypeEnum, Default: "balanced", Risk: RiskLow,
		Why: "performance for a build or a game, power-saver on battery; held only while the trial lasts"}
	k, err := resolvePPD(ctx, env, ppdKnobName, "")
	if err == nil {
		var cur string
		if cur, err = k.Read(ctx); err == nil {
			info.Current, info.Available = cur, true
			info.Allowed, err = k.(*ppdKnob).holdable()
		}
	}
	if err != nil {
		info.Available, info.Reason = false, reason(err)
	}
	return []TunableInfo{info}
}

func resolvePPD(_ context.Context, env *Env, name, target string) (Knob, error) {
	if name != ppdKnobName {
		return nil, ErrUnknownKnob
	}
	if target != "" {
		return nil, invalid("%s is machine-wide and takes no target", name)
	}
	conn, err := busService(env, ppdName)
	if err != nil {
		return nil, err
	}
	return &ppdKnob{obj: conn.Object(ppdName, ppdPath)}, nil
}

type ppdKnob struct {
	obj    godbus.BusObject
	mu     sync.Mutex
	cookie uint32
	held   bool
}

func (k *ppdKnob) Key() string { return ppdKnobName }

func (k *ppdKnob) Read(ctx context.Context) (string, error) {
	v, err := k.obj.GetProperty(ppdIface + ".ActiveProfile")
	if err != nil {
		return "", fmt.Errorf("power-profiles-daemon: %w", err)
	}
	s, _ := v.Value().(string)
	return s, nil
}

// holdable lists the profiles HoldProfile accepts (not "balanced").
func (k *ppdKnob) holdable() ([]string, error) {
	v, err := k.obj.GetProperty(ppdIface + ".Profiles")
	if err != nil {
		return nil, fmt.Errorf("power-profiles-daemon: %w", err)
	}
	list, _ := v.Value().([]map[string]godbus.Variant)
	var out []string
	for _, p := range list {
		if name, _ := p["Profile"].Value().(string); name == "performance" || name == "power-saver" {
			out = append(out, name)
		}
	}
	return out, nil
}

func (k *ppdKnob) Validate(_ context.Context, value string) (string, error) {
	all, err := k.holdable()
	if err != nil {
		return "", err
	}
	return oneOf(ppdKnobName, value, all)
}

func (k *ppdKnob) Write(ctx context.Context, value string) error {
	var cookie uint32
	err := k.obj.CallWithContext(ctx, ppdIface+".HoldProfile", 0, value, "trial", "org.npllm.Assistant").Store(&cookie)
	if err != nil {
		return fmt.Errorf("power-profiles-daemon: hold %s: %w", value, err)
	}
	k.mu.Lock()
	k.cookie, k.held = cookie, true
	k.mu.Unlock()
	return nil
}

// Restore releases our hold; without one (a previous npllmd died) the hold
// already ended with its connection.
func (k *ppdKnob) Restore(ctx context.Context, _ string) error {
	k.mu.Lock()
	cookie, held := k.cookie, k.held
	k.held = false
	k.mu.Unlock()
	if !held {
		return nil
	}
	return k.obj.CallWithContext(ctx, ppdIface+".ReleaseProfile", 0, cookie).Err
}
