package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/godbus/dbus/v5"

	"github.com/npllm/npllm/dbus/client"
	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/systemd/msgid"
)

// The real chain: npllmd on a private bus with real polkitd and kernel,
// npllm-exporter as an unprivileged user, Debian's Prometheus scraping it
// with the repo's rules, and a real Alertmanager.

var binDir string

func TestMain(m *testing.M) {
	if os.Getenv("NPLLM_TEST_HELPER") == "hog" {
		// Wait to be put in a memory-limited cgroup, then touch memory
		// until the OOM killer ends us.
		fmt.Fscanln(os.Stdin)
		var chunks [][]byte
		for range 4096 {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			chunks = append(chunks, b)
		}
		runtime.KeepAlive(chunks)
		os.Exit(1)
	}
	testbus.RunWithBinaries(m, &binDir, "./cmd/npllmd", "./cmd/npllm-exporter")
}

func bin(name string) string { return filepath.Join(binDir, name) }

// startExporter runs npllm-exporter as an unprivileged user on b; it
// returns its address and log file.
func startExporter(t testing.TB, b *testbus.Bus, args ...string) (string, *os.File) {
	t.Helper()
	u, err := testbus.EnsureUser("npllm-promexp")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := u.Command(b, bin("npllm-exporter"), append([]string{"--web.listen-address=" + addr}, args...)...)
	log := startProcess(t, "npllm-exporter", cmd)
	return addr, log
}

// scrape fetches the exposition and parses it.
func scrape(t testing.TB, addr string) (string, map[string]*dtoFamily) {
	t.Helper()
	var resp *http.Response
	var err error
	for range 50 {
		if resp, err = http.Get("http://" + addr + "/metrics"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse the exposition: %v\n%s", err, body)
	}
	return string(body), fams
}

func value(fams map[string]*dtoFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// seriesCount counts the sample lines of an exposition.
func seriesCount(text string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

func TestPrometheusScrapesTheExporter(t *testing.T) {
	b := testbus.ForTest(t)
	d := b.DaemonForTest(t, bin("npllmd"))
	addr, _ := startExporter(t, b)
	text, fams := scrape(t, addr)
	if v, _ := value(fams, "npllm_up"); v != 1 {
		t.Fatalf("npllm_up %v with npllmd running:\n%s", v, text)
	}

	// Budget and lint on the default install's exposition.
	if n := seriesCount(text); n >= 300 {
		t.Errorf("%d series, budget 300", n)
	} else {
		t.Logf("default exposition: %d series", n)
	}
	check := exec.Command(lookPath(t, "promtool", "prometheus"), "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	am := startAlertmanager(t)
	prom := startPrometheus(t, addr, am)
	eventually(t, prom, `npllm_up{job="npllm"}`, 20*time.Second, func(r []sample) bool { return len(r) == 1 && r[0].Value == 1 })

	// Memory as /proc/meminfo says, at the time of the query (npllmd
	// re-reads it every second, Prometheus scrapes every second).
	if r := query(t, prom, "npllm_memory_total_bytes"); len(r) != 1 || r[0].Value != meminfo(t, "MemTotal") {
		t.Errorf("npllm_memory_total_bytes %v, MemTotal %v", r, meminfo(t, "MemTotal"))
	}
	// MemAvailable moves with other programs; the exposed value is at most
	// ~2 s old (npllmd's 1 s refresh, then the 1 s scrape interval), so it
	// must lie within what /proc/meminfo said over the 2.5 s before the
	// query (and at it), give or take 16 MiB.
	lo, hi := math.Inf(1), math.Inf(-1)
	for range 50 {
		v := meminfo(t, "MemAvailable")
		lo, hi = min(lo, v), max(hi, v)
		time.Sleep(50 * time.Millisecond)
	}
	r := query(t, prom, "npllm_memory_available_bytes")
	v := meminfo(t, "MemAvailable")
	lo, hi = min(lo, v), max(hi, v)
	const tolerance = 16 << 20
	if len(r) != 1 || r[0].Value < lo-tolerance || r[0].Value > hi+tolerance {
		t.Errorf("npllm_memory_available_bytes %v, MemAvailable %v..%v over the last 2.5 s (± 16 MiB)", r, lo, hi)
	}

	// Direct I/O the kernel must send to the disk, then a finite p99
	// inside the bounds npllmd's own histogram shows.
	f := filepath.Join(t.TempDir(), "io")
	time.Sleep(2 * time.Second) // a sample before the I/O, for rate()
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+f, "bs=64k", "count=64", "oflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	q := `histogram_quantile(0.99, sum by (le) (rate(npllm_block_io_latency_seconds_bucket{op="write"}[1m])))`
	res := eventually(t, prom, q, 20*time.Second, func(r []sample) bool {
		return len(r) == 1 && !math.IsNaN(r[0].Value) && !math.IsInf(r[0].Value, 0) && r[0].Value > 0
	})
	c := client.NewClient(mustConnect(t, b))
	h, err := c.GetHistogram(context.Background(), "block_io_latency", "write")
	if err != nil {
		t.Fatal(err)
	}
	lo, hi = math.Inf(1), 0.0
	for i, n := range h.Counts {
		if n > 0 {
			lo, hi = min(lo, float64(h.BucketLow[i])/1e9), max(hi, float64(h.BucketHigh[i])/1e9)
		}
	}
	if p := res[0].Value; p < lo || p > hi {
		t.Errorf("p99 %g s outside the buckets npllmd shows [%g, %g) s", p, lo, hi)
	}

	// A real OOM kill → the counter's increase → NpllmOOMKills firing in
	// Alertmanager.
	oomKill(t)
	eventually(t, prom, `increase(npllm_events_total{kind="oom.kill"}[1m]) >= 1`, 30*time.Second, func(r []sample) bool { return len(r) == 1 })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(am + "/api/v2/alerts?filter=alertname%3D%22NpllmOOMKills%22")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"alertname":"NpllmOOMKills"`) && strings.Contains(string(body), `"state":"active"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NpllmOOMKills not active in Alertmanager within 30 s: %s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// npllmd logged the alert with its kind's MESSAGE_ID (journalctl
	// MESSAGE_ID=… and the catalog key on it).
	if !strings.Contains(d.Log(), "message_id="+msgid.AlertOOMKill) {
		t.Errorf("the OOM alert was logged without its MESSAGE_ID:\n%s", tail(d.Log(), 2000))
	}
}

func oomKill(t *testing.T) {
	t.Helper()
	add := testbus.MemoryCgroup(t, 48<<20, false)
	hog := exec.Command(bin("self"))
	hog.Env = append(os.Environ(), "NPLLM_TEST_HELPER=hog")
	in, err := hog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	add(hog.Process.Pid)
	io.WriteString(in, "go\n")
	hog.Wait()
	if ws, ok := hog.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog was not OOM-killed: %v", hog.ProcessState)
	}
}

// Started before npllmd: npllm_up 0 and one clear log line; then npllmd
// appears, is restarted while scrapes go on, and no counter ever goes
// backwards.
func TestExporterWithoutNpllmdAndAcrossRestarts(t *testing.T) {
	b := testbus.ForTest(t)
	addr, log := startExporter(t, b)
	_, fams := scrape(t, addr)
	if v, ok := value(fams, "npllm_up"); !ok || v != 0 {
		t.Fatalf("npllm_up %v (present %v) without npllmd", v, ok)
	}
	if _, ok := fams["npllm_events_total"]; ok {
		t.Error("counters exported while npllmd is down")
	}
	out, _ := os.ReadFile(log.Name())
	if !strings.Contains(string(out), "npllmd does not answer on the system bus") {
		t.Errorf("no clear log line without npllmd:\n%s", out)
	}

	d := b.DaemonForTest(t, bin("npllmd"))
	last := map[string]float64{}
	check := func() map[string]*dtoFamily {
		_, fams := scrape(t, addr)
		for name, f := range fams {
			if !strings.HasSuffix(name, "_total") {
				continue
			}
			for _, m := range f.GetMetric() {
				key := name + fmt.Sprint(m.GetLabel())
				v := m.GetCounter().GetValue()
				if v < last[key] {
					t.Errorf("%s went backwards: %v → %v", key, last[key], v)
				}
				last[key] = v
			}
		}
		return fams
	}
	if v, _ := value(check(), "npllm_up"); v != 1 {
		t.Fatal("npllm_up is not 1 once npllmd runs")
	}
	for range 20 {
		exec.Command("true").Run()
	}
	var execs float64
	for deadline := time.Now().Add(10 * time.Second); execs < 20; {
		execs, _ = value(check(), "npllm_events_total", "kind", "process.exec")
		if time.Now().After(deadline) {
			t.Fatalf("process.exec count %v after 20 execs", execs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// npllmd's own count (the exporter would hide a drop): rebuilt from
	// the journal after the restart, not restarted from zero.
	c := client.NewClient(mustConnect(t, b))
	before, err := c.GetCounters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if v, _ := value(check(), "npllm_up"); v != 0 {
		t.Error("npllm_up is not 0 while npllmd is stopped")
	}
	b.DaemonForTest(t, bin("npllmd"))
	after, err := c.GetCounters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Events["process.exec"] < before.Events["process.exec"] || before.Events["process.exec"] < 20 || after.BootID != before.BootID || after.StartedNS <= before.StartedNS {
		t.Errorf("GetCounters before the restart %+v, after %+v", before, after)
	}
	fams = check()
	if v, _ := value(fams, "npllm_up"); v != 1 {
		t.Fatal("npllm_up is not 1 after npllmd restarted")
	}
	// Rebuilt from the journal: at least what was counted before.
	if v, _ := value(fams, "npllm_events_total", "kind", "process.exec"); v < execs {
		t.Errorf("process.exec %v after the restart, %v before", v, execs)
	}
	for range 5 {
		check()
	}
	out, _ = os.ReadFile(log.Name())
	if !strings.Contains(string(out), "npllmd answers on the system bus") {
		t.Errorf("recovery not logged:\n%s", out)
	}
}

type dtoFamily = dto.MetricFamily

func mustConnect(t testing.TB, b *testbus.Bus) *dbus.Conn {
	t.Helper()
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
