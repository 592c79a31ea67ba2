package sensors

import "golang.org/x/sys/unix"

type unixTimespec = unix.Timespec

const (
	clockBoottime = unix.CLOCK_BOOTTIME
	clockRealtime = unix.CLOCK_REALTIME
)

func clockGettime(clock int32, ts *unix.Timespec) { _ = unix.ClockGettime(clock, ts) }
