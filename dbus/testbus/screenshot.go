package testbus

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Screenshot renders npllm-agent's notifications and tray for the README:
// npllmd on a private bus, a desktop (Xvfb, dunst), the agent, a full
// little file system and a crashing process raise real alerts; the screen
// is captured with ImageMagick's import. No StatusNotifierItem host that
// runs under Xvfb ships with Debian 12, so the panel strip at the top is
// drawn here from the agent's real tray item (its IconPixmap and ToolTip,
// read over D-Bus from a recording StatusNotifierWatcher).
func Screenshot(binDir, out string) error {
	dir, err := os.MkdirTemp("", "npllm-screenshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bus, err := Start(Options{Polkit: os.Geteuid() == 0})
	if err != nil {
		return err
	}
	defer bus.Close()
	os.WriteFile(filepath.Join(bus.Dir, "npllmd.toml"), []byte("[alerts]\ndisk_warning_percent = 100\ndisk_critical_percent = 100\n"), 0o644)
	d, err := bus.StartDaemon(filepath.Join(binDir, "npllmd"))
	if err != nil {
		return err
	}
	defer d.Stop()
	desk, err := StartDesktop(dir)
	if err != nil {
		return err
	}
	defer desk.Close()
	session, err := dbus.Connect(desk.SessionAddress)
	if err != nil {
		return err
	}
	defer session.Close()
	w, err := WatchTrayItems(session)
	if err != nil {
		return err
	}

	agent := exec.Command(filepath.Join(binDir, "npllm-agent"))
	agent.Env = append(desk.Env(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address, "XDG_STATE_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }()
	var item string
	select {
	case item = <-w.Registered:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the agent registered no tray item")
	}
	time.Sleep(time.Second)

	// Real alerts: a process that crashes, and a small file system that fills.
	exec.Command("sh", "-c", "kill -SEGV $$").Run()
	mnt := filepath.Join(dir, "data")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "npllm-demo", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	os.WriteFile(filepath.Join(mnt, "fill"), make([]byte, 5<<20), 0o644)
	time.Sleep(3 * time.Second)

	shot := filepath.Join(dir, "screen.png")
	if out, err := exec.Command("import", "-display", desk.Display, "-window", "root", shot).CombinedOutput(); err != nil {
		return fmt.Errorf("import (ImageMagick): %v %s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		return err
	}
	screen, err := png.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	obj := session.Object(item, "/StatusNotifierItem")
	var tip struct {
		Icon   string
		Pixmap []struct {
			W, H int32
			Data []byte
		}
		Title, Text string
	}
	var v dbus.Variant
	if err := obj.Call("org.freedesktop.DBus.Properties.Get", 0, "org.kde.StatusNotifierItem", "ToolTip").Store(&v); err == nil {
		dbus.Store([]any{v.Value()}, &tip)
	}
	var pix []struct {
		W, H int32
		Data []byte
	}
	if err := obj.Call("org.freedesktop.DBus.Properties.Get", 0, "org.kde.StatusNotifierItem", "IconPixmap").Store(&v); err == nil {
		dbus.Store([]any{v.Value()}, &pix)
	}
	img := image.NewRGBA(screen.Bounds())
	draw.Draw(img, img.Bounds(), screen, image.Point{}, draw.Src)
	// The panel strip: tooltip text, then the icon at the right.
	const strip = 28
	draw.Draw(img, image.Rect(0, 0, img.Bounds().Dx(), strip), &image.Uniform{color.RGBA{0x2b, 0x34, 0x40, 0xff}}, image.Point{}, draw.Src)
	(&font.Drawer{Dst: img, Src: image.White, Face: basicfont.Face7x13, Dot: fixed.P(10, 19)}).DrawString("tray: " + strings.Map(func(r rune) rune {
		if r > 0x7e {
			return '-' // basicfont is ASCII
		}
		return r
	}, tip.Title))
	if len(pix) > 0 {
		p := pix[0]
		x0 := img.Bounds().Dx() - int(p.W) - 8
		for y := 0; y < int(p.H); y++ {
			for x := 0; x < int(p.W); x++ {
				i := 4 * (y*int(p.W) + x)
				if i+3 >= len(p.Data) {
					break
				}
				a, r, g, b := p.Data[i], p.Data[i+1], p.Data[i+2], p.Data[i+3] // ARGB, network order
				if a > 0 {
					img.Set(x0+x*20/int(p.W), 4+y*20/int(p.H), color.RGBA{r, g, b, a})
				}
			}
		}
	}
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := png.Encode(o, img); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// TrayWatcher stands in for a panel's StatusNotifierWatcher: no tray host
// that runs under Xvfb ships with Debian 12, so this boundary is a fake. It
// records the unique bus name of every item that registers, as the real
// watcher's RegisterStatusNotifierItem sees it.
type TrayWatcher struct {
	Registered chan string
}

// WatchTrayItems owns org.kde.StatusNotifierWatcher on conn.
func WatchTrayItems(conn *dbus.Conn) (*TrayWatcher, error) {
	w := &TrayWatcher{Registered: make(chan string, 4)}
	if err := conn.Export(w, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		return nil, err
	}
	reply, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue)
	if err == nil && reply != dbus.RequestNameReplyPrimaryOwner {
		err = fmt.Errorf("org.kde.StatusNotifierWatcher is taken")
	}
	return w, err
}

func (w *TrayWatcher) RegisterStatusNotifierItem(msg dbus.Message, service string) *dbus.Error {
	w.Registered <- msg.Headers[dbus.FieldSender].Value().(string)
	return nil
}
