package tuning

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Block devices: the I/O scheduler (only one the device itself lists) and
// read-ahead. The target is the device's name in /sys/block.

func init() {
	Register(Family{Name: "block", List: listBlock, Resolve: resolveBlock})
}

const (
	blockScheduler = "block.scheduler"
	blockReadAhead = "block.read_ahead_kb"
)

func listBlock(ctx context.Context, env *Env) []TunableInfo {
	ents, err := os.ReadDir(filepath.Join(env.Sys, "block"))
	if err != nil {
		return []TunableInfo{{Name: blockScheduler, Family: "block", Type: TypeEnum, Risk: RiskMedium,
			Reason: "no /sys/block: " + reason(err)}}
	}
	var out []TunableInfo
	for _, e := range ents {
		dev := e.Name()
		sched := TunableInfo{Name: blockScheduler, Family: "block", Target: dev, Type: TypeEnum, Risk: RiskMedium,
			Why: "mq-deadline/bfq favour interactive reads on rotating or slow disks; none suits fast NVMe"}
		if cur, allowed, err := readScheduler(env, dev); err != nil {
			sched.Reason = reason(err)
		} else {
			sched.Current, sched.Allowed, sched.Available = cur, allowed, true
		}
		ra := TunableInfo{Name: blockReadAhead, Family: "block", Target: dev, Type: TypeInt, Min: 0, Max: 65536,
			Default: "128", Risk: RiskLow,
			Why: "larger read-ahead speeds sequential reads (media, backups); smaller wastes less cache on random I/O"}
		k := &blockKnob{env: env, dev: dev, attr: "read_ahead_kb", name: blockReadAhead}
		if cur, err := k.Read(ctx); err != nil {
			ra.Reason = reason(err)
		} else {
			ra.Current, ra.Available = cur, true
		}
		out = append(out, sched, ra)
	}
	return out
}

func validDevice(dev string) error {
	if dev == "" || len(dev) > 32 || strings.ContainsAny(dev, "/\x00") || dev == "." || dev == ".." {
		return invalid("block device %q is not a device name from /sys/block", dev)
	}
	return nil
}

func resolveBlock(ctx context.Context, env *Env, name, target string) (Knob, error) {
	var attr string
	switch name {
	case blockScheduler:
		attr = "scheduler"
	case blockReadAhead:
		attr = "read_ahead_kb"
	default:
		return nil, ErrUnknownKnob
	}
	if err := validDevice(target); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(env.Sys, "block", target)); err != nil {
		return nil, invalid("no block device %q", target)
	}
	k := &blockKnob{env: env, dev: target, attr: attr, name: name}
	if _, err := k.Read(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// readScheduler parses "none [mq-deadline] kyber bfq".
func readScheduler(env *Env, dev string) (string, []string, error) {
	b, err := os.ReadFile(filepath.Join(env.Sys, "block", dev, "queue", "scheduler"))
	if err != nil {
		return "", nil, unavailable("%s has no I/O scheduler (%v)", dev, err)
	}
	cur, all := bracketed(string(b))
	if cur == "" {
		// Devices without a queue print just "none".
		if len(all) == 1 {
			return all[0], all, nil
		}
		return "", nil, fmt.Errorf("%s: cannot parse scheduler list %q", dev, strings.TrimSpace(string(b)))
	}
	return cur, all, nil
}

type blockKnob struct {
	env             *Env
	dev, attr, name string
}

func (k *blockKnob) Key() string { return k.name + "@" + k.dev }

func (k *blockKnob) path() string { return filepath.Join(k.env.Sys, "block", k.dev, "queue", k.attr) }

func (k *blockKnob) Read(context.Context) (string, error) {
	if k.attr == "scheduler" {
		cur, _, err := readScheduler(k.env, k.dev)
		return cur, err
	}
	b, err := os.ReadFile(k.path())
	if err != nil {
		return "", unavailable("%s: %v", k.Key(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (k *blockKnob) Validate(_ context.Context, value string) (string, error) {
	if k.attr == "scheduler" {
		_, all, err := readScheduler(k.env, k.dev)
		if err != nil {
			return "", err
		}
		return oneOf(k.Key(), value, all)
	}
	n, err := parseBounded(k.Key(), value, 0, 65536)
	if err != nil {
		return "", err
	}
	// The kernel keeps read-ahead in pages and reads back the rounded value
	// (250 → 248), which would look like someone else's change.
	pageKB := int64(os.Getpagesize() / 1024)
	return strconv.FormatInt(n-n%pageKB, 10), nil
}

func (k *blockKnob) Write(_ context.Context, value string) error { return writeSysfs(k.path(), value) }

func (k *blockKnob) Restore(ctx context.Context, old string) error { return k.Write(ctx, old) }
