// Package mutes is what the desktop user taught npllm-agent not to show
// again, in one file that the agent and npllmctl (mutes, unmute) share. It
// is a leaf: no bus, no tray, no notification imports.
package mutes

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Set is what the user taught the agent: alerts of a kind about an app
// they do not want to hear of again, and how often they dismissed each.
// It lives in the user's state directory, so npllmctl unmute (running as
// the same user) can edit it; the agent re-reads it when it changes.
type Set struct {
	path string

	mu        sync.Mutex
	loadedAt  time.Time
	Muted     map[string]bool `json:"muted"`     // key: kind + " " + app
	Dismissed map[string]int  `json:"dismissed"` // key as above
}

// DismissalsToMute is how many dismissals of the same kind of alert for the
// same app mute it.
const DismissalsToMute = 3

// Path is $XDG_STATE_HOME/npllm/mutes.json (~/.local/state/…).
func Path() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "npllm", "mutes.json")
}

// Open loads the file (missing: nothing muted). On error it still returns
// an empty set that saves to path, so a damaged file never stops the agent.
func Open(path string) (*Set, error) {
	m := Empty(path)
	return m, m.reload(true)
}

// Empty is a set with nothing muted that saves to path.
func Empty(path string) *Set {
	return &Set{path: path, Muted: map[string]bool{}, Dismissed: map[string]int{}}
}

func muteKey(kind, app string) string { return kind + " " + app }

func (m *Set) reload(force bool) error {
	fi, err := os.Stat(m.path)
	if errors.Is(err, os.ErrNotExist) {
		m.Muted, m.Dismissed = map[string]bool{}, map[string]int{}
		return nil
	}
	if err != nil {
		return err
	}
	if !force && !fi.ModTime().After(m.loadedAt) {
		return nil
	}
	data, err := os.ReadFile(m.path)
	if err != nil {
		return err
	}
	var next struct {
		Muted     map[string]bool `json:"muted"`
		Dismissed map[string]int  `json:"dismissed"`
	}
	if err := json.Unmarshal(data, &next); err != nil {
		return err
	}
	m.Muted, m.Dismissed, m.loadedAt = next.Muted, next.Dismissed, fi.ModTime()
	if m.Muted == nil {
		m.Muted = map[string]bool{}
	}
	if m.Dismissed == nil {
		m.Dismissed = map[string]int{}
	}
	return nil
}

func (m *Set) save() error {
	if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(struct {
		Muted     map[string]bool `json:"muted"`
		Dismissed map[string]int  `json:"dismissed"`
	}{m.Muted, m.Dismissed}, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return err
	}
	if fi, err := os.Stat(m.path); err == nil {
		m.loadedAt = fi.ModTime()
	}
	return nil
}

// IsMuted says whether alerts of kind about app are muted.
func (m *Set) IsMuted(kind, app string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.reload(false)
	return m.Muted[muteKey(kind, app)] || m.Muted[muteKey(kind, "")]
}

// Dismissed records one dismissal; it reports true when this one mutes.
func (m *Set) Dismiss(kind, app string) (muted bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.reload(false)
	k := muteKey(kind, app)
	m.Dismissed[k]++
	if m.Dismissed[k] >= DismissalsToMute && !m.Muted[k] {
		m.Muted[k] = true
		muted = true
	}
	return muted, m.save()
}

// Mute mutes kind for app ("" for every app).
func (m *Set) Mute(kind, app string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.reload(false)
	m.Muted[muteKey(kind, app)] = true
	return m.save()
}

// Unmute undoes a mute and forgets the dismissals; it reports whether
// there was one.
func (m *Set) Unmute(kind, app string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.reload(false)
	k := muteKey(kind, app)
	was := m.Muted[k]
	delete(m.Muted, k)
	delete(m.Dismissed, k)
	return was, m.save()
}

// List returns the muted kind/app pairs, sorted.
func (m *Set) List() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.reload(false)
	var out []string
	for k, on := range m.Muted {
		if on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
