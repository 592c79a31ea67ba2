// Command npllm-devbus is the development harness behind "make run": when
// the machine's system bus has no npllm policy installed, it starts a
// private system-like bus with the repo's policy and a real polkitd
// (package dbus/testbus), runs npllmd on it, shows npllmctl status, and
// stays in the foreground until Ctrl-C, then cleans up everything it started.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/npllm/npllm/dbus/testbus"
)

const installedPolicy = "/usr/share/dbus-1/system.d/org.npllm.Assistant.conf"

func main() {
	bin := flag.String("bin", "bin", "directory holding npllmd and npllmctl")
	screenshot := flag.String("screenshot", "", "render the agent's notifications and tray under Xvfb to this PNG and exit (make screenshot)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `Usage: npllm-devbus [--bin DIR] [-- NPLLMD-ARGS...]

Runs npllmd for development. If npllm is installed (%s exists and the
system bus is up), it only shows "npllmctl status" from the real daemon.
Otherwise it starts a private bus with the repo's bus policy and a real
polkitd, runs npllmd on it until Ctrl-C, and prints the line that points
npllmctl at it.

`, installedPolicy)
		flag.PrintDefaults()
	}
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *screenshot != "" {
		if err := testbus.Screenshot(*bin, *screenshot); err != nil {
			log.Error("screenshot", "err", err)
			os.Exit(1)
		}
		log.Info("screenshot written", "file", *screenshot)
		return
	}
	ctl := filepath.Join(*bin, "npllmctl")

	if _, err := os.Stat(installedPolicy); err == nil {
		if _, err := os.Stat("/run/dbus/system_bus_socket"); err == nil {
			log.Info("npllm is installed on this machine; using the real system bus")
			os.Exit(runShow(exec.Command(ctl, "status")))
		}
	}

	bus, err := testbus.Start(testbus.Options{Polkit: os.Geteuid() == 0})
	if err != nil {
		log.Error("start private bus", "err", err)
		os.Exit(1)
	}
	defer bus.Close()
	if os.Geteuid() != 0 {
		log.Warn("not root: no polkitd, and npllmd sees less of other users' processes")
	}
	d, err := bus.StartDaemon(filepath.Join(*bin, "npllmd"), flag.Args()...)
	if err != nil {
		log.Error("start npllmd", "err", err)
		return
	}
	status := exec.Command(ctl, "status")
	status.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	runShow(status)
	fmt.Printf(`
npllmd is running on a private bus (its log: %s).
In another terminal, talk to it with:

    export DBUS_SYSTEM_BUS_ADDRESS=%s
    %s top

Press Ctrl-C to stop npllmd and the bus.
`, d.LogOut.Name(), bus.Address, ctl)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-waitCh(d):
		log.Error("npllmd exited", "log", d.Log())
	}
	if err := d.Stop(); err != nil {
		log.Warn("stop npllmd", "err", err)
	}
}

func waitCh(d *testbus.Daemon) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			if _, done := d.Wait(3600e9); done {
				close(ch)
				return
			}
		}
	}()
	return ch
}

func runShow(cmd *exec.Cmd) int {
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}
