package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
)

// A tiny FUSE file system (helper process): an empty root whose statfs
// says 98 % full, so npllmd raises disk.full for it while it answers.
func init() {
	if os.Getenv("NPLLM_TEST_HELPER") == "fuse-serve" {
		os.Exit(serveFUSE(os.Args[len(os.Args)-1]))
	}
}

type fullRoot struct{ fs.Inode }

func (*fullRoot) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Blocks, out.Bfree, out.Bavail, out.Bsize, out.Files, out.Ffree = 1000, 20, 20, 4096, 100, 90
	return 0
}

func serveFUSE(dir string) int {
	srv, err := fs.Mount(dir, &fullRoot{}, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMount: true, FsName: "npllm-test", Name: "npllmtest"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mount:", err)
		return 1
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() { <-sig; srv.Unmount() }()
	srv.Wait()
	return 0
}

// A FUSE server that stops answering (SIGSTOP) leaves statfs on its mount
// hanging for ever. npllmd must keep refreshing its properties, keep
// feeding the watchdog, and show that mount as unknown. Everything runs in
// a private mount namespace (the FUSE server's; npllmd joins it), so no
// other process on this machine ever meets the hung mount.
func TestAHungFUSEMountLeavesNpllmdRefreshingAndTheDiskUnknown(t *testing.T) {
	b := testbus.ForTest(t)
	os.WriteFile(filepath.Join(b.Dir, "npllmd.toml"), []byte("[disks]\ninclude_fuse = true\n"), 0o644)
	mnt := filepath.Join(b.Dir, "hung-fuse")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	server := exec.Command("unshare", "--mount", "--propagation", "private", bin("self"), mnt)
	server.Env = append(os.Environ(), "NPLLM_TEST_HELPER=fuse-serve")
	server.Stderr = os.Stderr
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(server.Process.Pid) // unshare execs: the FUSE server itself
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGCONT)
		exec.Command("nsenter", "-t", pid, "-m", "umount", "-l", mnt).Run()
		server.Process.Kill()
		server.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("FUSE server: %q %v", line, err)
	}

	// systemd's watchdog protocol, received here instead of by systemd.
	notify := filepath.Join(b.Dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	pings := make(chan time.Time, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "WATCHDOG=1") {
				pings <- time.Now()
			}
		}
	}()
	t.Setenv("NOTIFY_SOCKET", notify)
	t.Setenv("WATCHDOG_USEC", "2000000")
	b.DaemonForTest(t, "nsenter", "-t", pid, "-m", "--", bin("npllmd"),
		"--state-dir="+filepath.Join(b.Dir, "state"), "--config="+filepath.Join(b.Dir, "npllmd.toml"), "--refresh=200ms")

	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.NewClient(conn)
	ctx := context.Background()
	alertID := "disk.full/" + mnt
	active := func() bool {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.ActiveAlerts {
			if a.ID == alertID {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !active(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the answering FUSE mount (98 % full) raised no disk.full: is it watched at all?")
		}
	}

	if err := conn.AddMatchSignal(); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 4096)
	conn.Signal(sigs)
	server.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	var slowest time.Duration
	for time.Since(stopped) < 12*time.Second {
		start := time.Now()
		if _, err := c.Status(ctx); err != nil {
			t.Fatalf("GetAll with a hung mount: %v", err)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(200 * time.Millisecond)
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("slowest GetAll with a hung mount took %v", slowest)
	}
	// npllmd stops feeding the watchdog when its refresh loop stalls for
	// 3 × refresh + 5 s = 5.6 s; pings must still come after that.
	var late int
	for len(pings) > 0 {
		if (<-pings).Sub(stopped) > 7*time.Second {
			late++
		}
	}
	if late < 3 {
		t.Errorf("%d watchdog pings more than 7 s after the mount hung, want one a second", late)
	}
	changed := 0
	for len(sigs) > 0 {
		if s := <-sigs; s.Name == "org.freedesktop.DBus.Properties.PropertiesChanged" {
			changed++
		}
	}
	if changed < 10 {
		t.Errorf("%d PropertiesChanged in 12 s with a hung mount, want the refresh loop's", changed)
	}
	if unknown, ok := sensorCounters(t, c, "disks")["mounts_unknown"]; !ok || unknown != 1 {
		t.Errorf("disks sensor's mounts_unknown = %v, want 1", unknown)
	}
	if !active() {
		t.Error("the hung mount's disk.full alert was cleared (an unknown reading is not a reading)")
	}
}
