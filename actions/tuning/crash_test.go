package tuning

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The "crashed" engine is a real process: this test binary re-executed, it
// starts a trial and waits to be killed with SIGKILL.
const crashEnv = "NPLLM_TUNING_CRASH_CHILD"

func TestHelperCrashingEngine(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("helper process for TestRecoverAtStartRevertsTrialOfCrashedEngine")
	}
	dir, value, _ := strings.Cut(spec, "|")
	e, err := New(Config{StateDir: dir, Log: quiet})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := e.RecoverAtStart(context.Background()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := e.Start(context.Background(), swapChange(value), Options{Canary: time.Hour, Lease: 2 * time.Hour}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("applied")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// startCrashingChild runs the helper until its trial is applied; the
// returned function kills it with SIGKILL.
func startCrashingChild(t *testing.T, dir, value string) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashingEngine$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir+"|"+value)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "applied" {
		kill()
		t.Fatalf("crashing child: %q %v", line, err)
	}
	return kill
}
