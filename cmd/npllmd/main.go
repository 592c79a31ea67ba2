// Command npllmd is npllm's system daemon: it owns org.npllm.Assistant on
// the system bus, runs the sensors and answers clients. It only wires the
// packages together; see the README's architecture section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/actions"
	"github.com/npllm/npllm/actions/tuning"
	"github.com/npllm/npllm/dbus/api"
	"github.com/npllm/npllm/dbus/server"
	"github.com/npllm/npllm/polkit"
	"github.com/npllm/npllm/sensors"
	"github.com/npllm/npllm/sensors/alerts"
	"github.com/npllm/npllm/sensors/canary"
	"github.com/npllm/npllm/sensors/journal"
	"github.com/npllm/npllm/systemd"
	"github.com/npllm/npllm/systemd/msgid"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `Usage: npllmd [OPTIONS]

npllmd is the npllm system daemon. It owns org.npllm.Assistant on the system
bus (or on the bus named by DBUS_SYSTEM_BUS_ADDRESS), watches the machine
through procfs and eBPF sensors, and serves the org.npllm.Assistant1 API to
npllmctl, npllm-agent and any D-Bus client. It is normally started by
systemd (npllmd.service) or by D-Bus activation; run it by hand only for
development (see "make run").

Options:
`

func main() {
	flags := flag.NewFlagSet("npllmd", flag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
		fmt.Fprint(flags.Output(), `
Exit status: 0 after SIGTERM/SIGINT, 1 when the bus name is taken or the
bus cannot be reached, 2 on bad options.
`)
	}
	refresh := flags.Duration("refresh", time.Second, "how often properties are re-read and PropertiesChanged emitted")
	logLevel := flags.String("log-level", "info", "debug, info, warn or error")
	force := flags.String("force-variant", "", "comma-separated sensor=variant pairs that restrict a sensor to one variant (e.g. processes=procfs)")
	disable := flags.String("disable-sensor", "", "comma-separated sensors to leave off")
	enable := flags.String("enable-sensor", "", "comma-separated sensors to start although they are off by default (e.g. syscalls)")
	stateDir := flags.String("state-dir", defaultStateDir(), "where the event journal and learned baselines are kept ($STATE_DIRECTORY under systemd)")
	configPath := flags.String("config", "/etc/npllm/npllmd.toml", "alert thresholds ([alerts] table) and which file systems are watched ([disks]); a missing file means the documented defaults")
	queue := flags.Int("event-queue", 65536, "events buffered between sensors and the journal; beyond it events are dropped and counted")
	journalSync := flags.Duration("journal-sync-interval", 5*time.Second, "how often the event journal is fsynced: what a power loss can lose (urgent events are fsynced at once)")
	showVersion := flags.Bool("version", false, "print the version and exit")
	cpuProfile := flags.String("cpuprofile", "", "write a Go CPU profile to this file until npllmd stops (for developers)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("npllmd", version)
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "npllmd: --log-level: %v\n", err)
		os.Exit(2)
	}
	forced, err := parsePairs(*force)
	if err != nil {
		fmt.Fprintf(os.Stderr, "npllmd: --force-variant: %v\n", err)
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "npllmd: --cpuprofile: %v\n", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	config, err := alerts.LoadFile(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "npllmd: --config: %v\n", err)
		os.Exit(2)
	}
	log := systemd.Logger("npllmd", level)
	slog.SetDefault(log)
	if err := run(log, options{*refresh, forced, sensorSwitches(*enable, *disable), *stateDir, *queue, *journalSync, config.Alerts, config.Disks}); err != nil {
		log.Error("npllmd stopped", "err", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type options struct {
	refresh  time.Duration
	forced   map[string]string
	enabled  map[string]bool
	stateDir string
	queue    int
	jsync    time.Duration
	alerts   alerts.Config
	disks    sensors.DiskOptions
}

func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	return "/var/lib/npllm"
}

func run(log *slog.Logger, o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()

	// sensors → hub (bounded, counted) → journal (seq, persisted) → subscribers
	hub := sensors.NewHub(o.queue)
	jrnl, err := journal.Open(o.stateDir, journal.Options{OnCommit: hub.Deliver, MaxPending: o.queue, SyncInterval: o.jsync, Log: log})
	if err != nil {
		return err
	}
	hub.SetSink(jrnl.Append, jrnl.Kick)
	defer func() {
		if err := jrnl.Close(); err != nil {
			log.Error("close journal", "err", err)
		}
	}()

	mgr := sensors.NewManager(ctx, &sensors.Env{Log: log, ForceVariant: o.forced, Hub: hub, Disks: o.disks}, o.enabled)
	defer mgr.Close()

	// committed events → alert engine (learns baselines) → Alert signals
	baselines := alerts.OpenBaselines(filepath.Join(o.stateDir, "baselines.json"), log)
	defer func() {
		if err := baselines.Save(); err != nil {
			log.Error("save baselines", "err", err)
		}
	}()
	var procs alerts.ProcessLister
	if t, ok := mgr.Running("processes").(*sensors.ProcessTable); ok {
		procs = t
	}
	engine := alerts.New(o.alerts, baselines, procs, nil)

	// Trials a crash left behind are reverted before the name is owned, so
	// no client can start one first.
	trials := openTuning(ctx, log, o.stateDir, hub, &canary.Source{Sensors: mgr, Baselines: baselines})
	if trials != nil {
		defer trials.Close()
	}

	units := &actions.Units{}
	defer units.Close()
	srv, err := server.NewServer(conn, server.ServerConfig{
		Version: version, Refresh: o.refresh, Sensors: mgr, Log: log,
		Authority: polkit.NewAuthority(conn), Units: units, Journal: jrnl, Hub: hub,
		Alerts: engine, Baselines: baselines, Tuning: trials,
	})
	if err != nil {
		return err
	}
	engine.SetListener(srv.AlertChanged)
	go engine.Follow(ctx, hub.Subscribe(4096, alerts.EventKinds...))
	if err := srv.RequestName(); err != nil {
		return err
	}
	log.Info("npllmd ready", "version", version, "bus_name", api.BusName, "unique_name", conn.Names()[0])
	systemd.Ready(fmt.Sprintf("serving %s; journal at seq %d", api.BusName, jrnl.LastSeq()))

	// The watchdog is fed only while a call to ourselves crosses the bus,
	// the refresh loop ticks and the journal commits.
	var lastBeat atomic.Int64
	degraded := false
	lastBeat.Store(time.Now().UnixNano())
	go systemd.Watchdog(ctx, func(ctx context.Context) error {
		if stalled := time.Since(time.Unix(0, lastBeat.Load())); stalled > 3*o.refresh+5*time.Second {
			return fmt.Errorf("refresh loop stalled for %s", stalled.Round(time.Second))
		}
		if err := conn.Object(api.BusName, api.ObjectPath).CallWithContext(ctx, "org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
			return fmt.Errorf("bus loop: %w", err)
		}
		// A refusing disk degrades the status, not the watchdog: events
		// still reach alerts, and a restart would not free the disk.
		if ok, reason := jrnl.Health(); !ok {
			systemd.Status("degraded: " + reason)
			degraded = true
		} else if degraded {
			systemd.Status(fmt.Sprintf("serving %s", api.BusName))
			degraded = false
		}
		return jrnl.Healthy()
	}, log)
	srv.Run(ctx, func() { lastBeat.Store(time.Now().UnixNano()) })
	systemd.Stopping()
	srv.ReleaseName()
	log.Info("npllmd stopping")
	return nil
}

// openTuning starts the trial engine and reverts what a previous npllmd
// left unconfirmed; without it npllmd still serves, and says why.
func openTuning(ctx context.Context, log *slog.Logger, dir string, hub *sensors.Hub, metrics *canary.Source) *tuning.Engine {
	eng, err := tuning.New(tuning.Config{StateDir: dir, Metrics: metrics, Log: log,
		Record: func(ev tuning.Event) { hub.Publish(server.TuningEvent(ev, time.Now())) }})
	if err != nil {
		log.Error("tuning trials unavailable", "err", err)
		return nil
	}
	reverted, err := eng.RecoverAtStart(ctx)
	switch {
	case errors.Is(err, tuning.ErrDamagedState):
		log.Error("recover tuning trials", msgid.Attr(msgid.StateMovedAside), "err", err)
	case err != nil:
		log.Error("recover tuning trials", "err", err)
	}
	for _, t := range reverted {
		log.Warn("reverted a trial left by a previous npllmd", "trial", string(t.ID), "reason", t.Reason)
	}
	return eng
}

func parsePairs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not sensor=variant", kv)
		}
		out[k] = v
	}
	return out, nil
}

// sensorSwitches merges --enable-sensor and --disable-sensor; disabling
// wins when a sensor is named in both.
func sensorSwitches(enable, disable string) map[string]bool {
	out := map[string]bool{}
	for _, sw := range []struct {
		list string
		on   bool
	}{{enable, true}, {disable, false}} {
		for _, name := range strings.Split(sw.list, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out[name] = sw.on
			}
		}
	}
	return out
}
