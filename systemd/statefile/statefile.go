// Package statefile is what npllmd's state files (the journal's segments
// and seq floor, baselines.json, the tuning trials) share when one is
// damaged or outdated: it is renamed aside with a tag and a UTC time stamp,
// never deleted and never fatal, and logged with msgid.StateMovedAside
// (systemd/npllm.catalog says what to do with it).
package statefile

import (
	"fmt"
	"os"
	"time"

	"github.com/npllm/npllm/systemd/msgid"
)

// stamp sorts by time and never collides within a millisecond's restart.
const stamp = "20060102T150405.000Z"

// MoveAside renames path to "<path>.<tag>-<UTC time>" (tag: "damaged",
// "migrated", "v1" …) and returns the new name.
func MoveAside(path, tag string) (string, error) {
	aside := fmt.Sprintf("%s.%s-%s", path, tag, time.Now().UTC().Format(stamp))
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, nil
}

// Attrs are the log attributes of a state file moved aside (or that could
// not be): the MESSAGE_ID, the file and why. Callers add "moved_to" or "err".
func Attrs(path string, why error) []any {
	return []any{msgid.Attr(msgid.StateMovedAside), "file", path, "reason", why.Error()}
}
