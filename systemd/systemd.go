// Package systemd is npllmd's glue to systemd: readiness, status and
// watchdog notifications (sd_notify), and logs to the journal with
// structured fields. The unit files live beside it in this folder.
package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd the service is up (Type=notify), with a status line.
// Outside systemd it does nothing.
func Ready(status string) {
	daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+status)
}

// Status updates the status line systemctl status shows.
func Status(status string) {
	daemon.SdNotify(false, "STATUS="+status)
}

// Stopping tells systemd the service is shutting down.
func Stopping() {
	daemon.SdNotify(false, daemon.SdNotifyStopping)
}

// Watchdog pings systemd's watchdog at half its interval, but only while
// alive reports nil: a wedged bus loop or event pipeline stops the pings,
// and systemd restarts the service. Without WatchdogSec it returns at once.
func Watchdog(ctx context.Context, alive func(context.Context) error, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	log.Info("watchdog enabled", "interval", interval)
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		check, cancel := context.WithTimeout(ctx, interval/4)
		err := alive(check)
		cancel()
		if err != nil {
			log.Error("not pinging the watchdog", "err", err)
			Status(fmt.Sprintf("unhealthy: %v", err))
			continue
		}
		daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}
}
