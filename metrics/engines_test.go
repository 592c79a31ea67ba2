package metrics_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
)

// Helpers that run the real engines from Debian (prometheus 2.42,
// prometheus-alertmanager 0.25) on loopback ports for one test.

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs cmd until the test ends, logging its output on failure.
func startProcess(t testing.TB, name string, cmd *exec.Cmd) *os.File {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", name, tail(string(out), 4000))
		}
	})
	return log
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t testing.TB, u string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %v (last error %v)", u, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (Debian package %s; .ci/run installs it)", name, pkg)
	}
	return p
}

// startAlertmanager returns its base URL.
func startAlertmanager(t testing.TB) string {
	t.Helper()
	bin := lookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(cfg, []byte("route: {receiver: none, group_wait: 1s}\nreceivers: [{name: none}]\n"), 0o644)
	port := freePort(t)
	startProcess(t, "alertmanager", exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir,
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--cluster.listen-address="))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/-/ready", 20*time.Second)
	return base
}

// startPrometheus scrapes target every second with the repo's rules,
// sending alerts to alertmanager (if not ""); it returns its base URL.
func startPrometheus(t testing.TB, target, alertmanager string) string {
	t.Helper()
	bin := lookPath(t, "prometheus", "prometheus")
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: npllm
    static_configs: [{targets: [%q]}]
`, filepath.Join(root, "packaging/prometheus/npllm.rules.yml"), target)
	if alertmanager != "" {
		u, _ := url.Parse(alertmanager)
		cfg += fmt.Sprintf("alerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}\n", u.Host)
	}
	path := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(path, []byte(cfg), 0o644)
	port := freePort(t)
	startProcess(t, "prometheus", exec.Command(bin, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port)))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/-/ready", 30*time.Second)
	return base
}

type sample struct {
	Labels map[string]string
	Value  float64
}

// query runs an instant PromQL query through Prometheus's HTTP API.
func query(t testing.TB, base, q string) []sample {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, body)
	}
	var out []sample
	for _, x := range r.Data.Result {
		s, _ := x.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, x.Value)
		}
		out = append(out, sample{x.Metric, v})
	}
	return out
}

// eventually polls a query until cond holds on its result.
func eventually(t testing.TB, base, q string, timeout time.Duration, cond func([]sample) bool) []sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := query(t, base, q)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s: condition not met within %v; last result %v", q, timeout, r)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// meminfo reads one /proc/meminfo field in bytes.
func meminfo(t testing.TB, field string) float64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	t.Fatalf("no %s in /proc/meminfo", field)
	return 0
}
