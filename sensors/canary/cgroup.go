package canary

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// A unit's CPU and memory from its cgroup: cgroup v2 (cpu.stat usage_usec,
// memory.current) or v1 (cpuacct.usage, memory.usage_in_bytes).

func (s *Source) root() string {
	if s.CgroupRoot != "" {
		return s.CgroupRoot
	}
	return "/sys/fs/cgroup"
}

func (s *Source) cgroupOf(ctx context.Context, unit string) (string, error) {
	var cg string
	var err error
	if s.UnitCgroup != nil {
		cg, err = s.UnitCgroup(ctx, unit)
	} else {
		cg, err = systemdCgroup(ctx, unit)
	}
	if err != nil {
		return "", err
	}
	if cg == "" || !strings.HasPrefix(cg, "/") || strings.Contains(cg, "..") {
		return "", fmt.Errorf("unit %s has no cgroup (is it running?)", unit)
	}
	return cg, nil
}

func systemdCgroup(ctx context.Context, unit string) (string, error) {
	conn, err := sdbus.NewWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("cannot reach systemd: %w", err)
	}
	defer conn.Close()
	p, err := conn.GetUnitPropertyContext(ctx, unit, "ControlGroup")
	if err != nil {
		return "", fmt.Errorf("systemd: %s: %w", unit, err)
	}
	cg, _ := p.Value.Value().(string)
	return cg, nil
}

func (s *Source) v2() bool {
	_, err := os.Stat(filepath.Join(s.root(), "cgroup.controllers"))
	return err == nil
}

// cgroupCPU is the cgroup's CPU time in ns.
func (s *Source) cgroupCPU(cg string) (uint64, error) {
	if s.v2() {
		v, err := keyed(filepath.Join(s.root(), cg, "cpu.stat"), "usage_usec")
		return v * 1000, err
	}
	return single(filepath.Join(s.root(), "cpuacct", cg, "cpuacct.usage"))
}

func (s *Source) unitCPU(ctx context.Context, unit string) (float64, error) {
	cg, err := s.cgroupOf(ctx, unit)
	if err != nil {
		return 0, err
	}
	read := func() (mark, error) {
		v, err := s.cgroupCPU(cg)
		return mark{at: time.Now(), total: v}, err
	}
	prev, now, err := s.window(ctx, "unit.cpu|"+unit, read)
	if err != nil {
		return 0, err
	}
	dt := now.at.Sub(prev.at).Seconds()
	if dt <= 0 || now.total < prev.total {
		return 0, nil
	}
	return float64(now.total-prev.total) / 1e9 / dt, nil
}

func (s *Source) unitMemory(ctx context.Context, unit string) (float64, error) {
	cg, err := s.cgroupOf(ctx, unit)
	if err != nil {
		return 0, err
	}
	var v uint64
	if s.v2() {
		v, err = single(filepath.Join(s.root(), cg, "memory.current"))
	} else {
		v, err = single(filepath.Join(s.root(), "memory", cg, "memory.usage_in_bytes"))
	}
	return float64(v), err
}

func single(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

func keyed(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
