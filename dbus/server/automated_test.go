package server_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/npllm/npllm/dbus/testbus"
	"github.com/npllm/npllm/polkit"
)

// A model behind the MCP bridge must not ride on an approval: polkit keeps
// an auth_*_keep answer for the calling process for five minutes whatever
// the details, and the bridge is one process. Two identical writes from
// one connection, each approved with a real password typed into a real
// pkttyagent: with "automated" the second asks again; without it the
// keep-window covers the second. (The subject has no logind session here,
// so a rule stands in for the active session's defaults: _keep for the
// person's action, none for the agent's, as the .policy says; the .policy
// itself is checked by TestAgentActionsNeverKeepAnApproval.)
func TestAutomatedWritesAreApprovedEveryTimeWhilePlainOnesKeep(t *testing.T) {
	b, _, _ := startDaemon(t)
	carol, err := testbus.EnsureUser("npllm-h2carol")
	if err != nil {
		t.Fatal(err)
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	if out, err := exec.Command("sh", "-c", "echo 'npllm-h2carol:"+password+"' | chpasswd").CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v %s", err, out)
	}
	if err := b.WriteRule("50-h2carol.rules", `polkit.addRule(function(action, subject) {
  if (subject.user != "npllm-h2carol") return polkit.Result.NOT_HANDLED;
  if (action.id == "`+polkit.ActionManageOwnProcess+`") return polkit.Result.AUTH_SELF_KEEP;
  if (action.id == "`+polkit.ActionAgentManageOwnProcess+`") return polkit.Result.AUTH_SELF;
});`); err != nil {
		t.Fatal(err)
	}
	for _, automated := range []bool{true, false} {
		t.Run(map[bool]string{true: "automated", false: "plain"}[automated], func(t *testing.T) {
			v := startVictim(t, carol)
			a := act("SetProcessPriority", v, "12", 0)
			a.Automated = automated
			caller := helperCmd(b, carol, "act-twice", a)
			stdin, _ := caller.StdinPipe()
			stdout, _ := caller.StdoutPipe()
			caller.Stderr = os.Stderr
			if err := caller.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { caller.Process.Kill(); caller.Wait() }()
			results := make(chan helperResult, 2)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var r helperResult
					jsonUnmarshal(sc.Text(), &r)
					results <- r
				}
			}()
			agentOut, agentIn := b.StartPkttyagent(t, caller.Process.Pid)
			prompts := func() int { return strings.Count(agentOut.String(), "Password:") }
			waitPrompt := func(n int, within time.Duration) bool {
				for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if prompts() >= n {
						return true
					}
				}
				return false
			}
			// First write: polkit asks, the password is typed.
			stdin.Write([]byte("go\n"))
			if !waitPrompt(1, 15*time.Second) {
				t.Fatalf("pkttyagent was not asked for the first write; it said: %q", agentOut.String())
			}
			wantAction := map[bool]string{true: polkit.ActionAgentManageOwnProcess, false: polkit.ActionManageOwnProcess}[automated]
			if !strings.Contains(agentOut.String(), wantAction) {
				t.Errorf("the prompt is not for %s:\n%s", wantAction, agentOut.String())
			}
			agentIn.Write([]byte(password + "\n"))
			select {
			case r := <-results:
				if r.Error != "" {
					t.Fatalf("first write, approved: %s %s\nagent: %s", r.Error, r.Message, agentOut.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("first write did not return; agent: %s", agentOut.String())
			}
			v.wantNice(t, 12, "the approved write")
			// Second, identical write from the same connection.
			stdin.Write([]byte("go\n"))
			asked := waitPrompt(2, 5*time.Second)
			if asked {
				agentIn.Write([]byte(password + "\n"))
			}
			select {
			case r := <-results:
				if r.Error != "" {
					t.Errorf("second write: %s %s", r.Error, r.Message)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("second write did not return; agent: %s", agentOut.String())
			}
			if automated && !asked {
				t.Error("the second automated write rode on the first approval: polkit did not ask again")
			}
			if !automated && asked {
				t.Error("the second plain write asked again: the keep-window of a person's approval is gone")
			}
			t.Logf("pkttyagent:\n%s", agentOut.String())
		})
	}
}

// The agent-* actions must never keep an approval, whatever the session.
func TestAgentActionsNeverKeepAnApproval(t *testing.T) {
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "packaging", "polkit", "org.npllm.Assistant.policy"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Actions []struct {
			ID       string `xml:"id,attr"`
			Defaults struct {
				Any, Inactive, Active string
			} `xml:"defaults"`
		} `xml:"action"`
	}
	if err := xml.Unmarshal([]byte(strings.NewReplacer("allow_any", "Any", "allow_inactive", "Inactive", "allow_active", "Active").Replace(string(data))), &policy); err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, a := range policy.Actions {
		declared[a.ID] = true
		if strings.Contains(a.ID, ".agent-") {
			for _, d := range []string{a.Defaults.Any, a.Defaults.Inactive, a.Defaults.Active} {
				if strings.HasSuffix(d, "_keep") || d == "yes" || d == "" {
					t.Errorf("%s: default %q; an automated write must be approved each time", a.ID, d)
				}
			}
		}
	}
	for _, id := range polkit.Actions() {
		if !declared[id] {
			t.Errorf("the polkit table uses %s, which the .policy does not declare", id)
		}
	}
	if err := polkit.CheckTable(); err != nil {
		t.Error(err)
	}
}
