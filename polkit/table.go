// Package polkit authorizes npllmd's methods: one table says which polkit
// action guards which method (anything not in it is denied), and an
// authority client asks polkitd about the caller's unique bus name.
package polkit

import "fmt"

// polkit action ids, declared in packaging/polkit/org.npllm.Assistant.policy.
const (
	ActionManageOwnProcess = "org.npllm.Assistant.manage-own-process"
	ActionManageAnyProcess = "org.npllm.Assistant.manage-any-process"
	ActionManageUnits      = "org.npllm.Assistant.manage-units"
	ActionConfigure        = "org.npllm.Assistant.configure"
	// ActionTune guards tuning trials: auth_admin, never kept.
	ActionTune = "org.npllm.Assistant.tune"

	// The agent-* actions guard the same methods when the call carries
	// option "automated": true (the MCP bridge, the ask loop): auth_self /
	// auth_admin without _keep, so one approval never covers a model's
	// next write.
	ActionAgentManageOwnProcess = "org.npllm.Assistant.agent-manage-own-process"
	ActionAgentManageAnyProcess = "org.npllm.Assistant.agent-manage-any-process"
	ActionAgentManageUnits      = "org.npllm.Assistant.agent-manage-units"
	ActionAgentConfigure        = "org.npllm.Assistant.agent-configure"
	ActionAgentTune             = "org.npllm.Assistant.agent-tune"
)

// Automated maps each action to the one used when the call is automated.
// Every action a method can need (including ActionManageAnyProcess for
// raising priority) must have an entry: CheckTable says so.
var Automated = map[string]string{
	ActionManageOwnProcess: ActionAgentManageOwnProcess,
	ActionManageAnyProcess: ActionAgentManageAnyProcess,
	ActionManageUnits:      ActionAgentManageUnits,
	ActionConfigure:        ActionAgentConfigure,
	ActionTune:             ActionAgentTune,
}

// Actions lists every action id the table can return, for the check
// against the .policy file.
func Actions() []string {
	var out []string
	for k, v := range Automated {
		out = append(out, k, v)
	}
	return out
}

// CheckTable reports a privileged method without an action, or an action
// without its automated counterpart.
func CheckTable() error {
	for name, r := range Methods {
		if r.ReadOnly {
			continue
		}
		if r.Action == "" {
			return fmt.Errorf("method %s is neither read-only nor guarded by an action", name)
		}
		for _, a := range []string{r.Action, r.OtherUserAction} {
			if _, ok := Automated[a]; a != "" && !ok {
				return fmt.Errorf("method %s: action %s has no automated counterpart", name, a)
			}
		}
	}
	if _, ok := Automated[ActionManageAnyProcess]; !ok {
		return fmt.Errorf("action %s has no automated counterpart", ActionManageAnyProcess)
	}
	return nil
}

// ForCall returns action itself, or its automated counterpart; an action
// without one (CheckTable forbids it) fails closed to the admin's.
func ForCall(action string, automated bool) string {
	if !automated {
		return action
	}
	if a, ok := Automated[action]; ok {
		return a
	}
	return ActionAgentManageAnyProcess
}

// Rule says how one method is authorized.
type Rule struct {
	// ReadOnly methods need no polkit check: they only show what any local
	// user may see (and redact other users' details themselves).
	ReadOnly bool
	// Action guards the method. For methods that target a process it is the
	// action used when the caller owns the target; OtherUserAction is used
	// when it does not.
	Action          string
	OtherUserAction string
}

// Methods maps every method of org.npllm.Assistant1 to its rule. A method
// missing here is denied (Lookup), and a test checks that every method of
// the interface XML has an entry.
var Methods = map[string]Rule{
	"GetProcesses":     {ReadOnly: true},
	"GetProcess":       {ReadOnly: true},
	"GetEvents":        {ReadOnly: true},
	"GetHistogram":     {ReadOnly: true},
	"GetSyscallStats":  {ReadOnly: true},
	"GetAlert":         {ReadOnly: true},
	"GetBaseline":      {ReadOnly: true},
	"GetConfiguration": {ReadOnly: true},
	"GetUnit":          {ReadOnly: true},
	"GetTunables":      {ReadOnly: true},
	"GetTrials":        {ReadOnly: true},
	"GetTrialHistory":  {ReadOnly: true},
	"GetCounters":      {ReadOnly: true},
	"GetSensorDetails": {ReadOnly: true},

	"SignalProcess":        {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"SetProcessPriority":   {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"SetProcessIOPriority": {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"ManageUnit":           {Action: ActionManageUnits},
	"SetSensorEnabled":     {Action: ActionConfigure},
	"ForgetBaseline":       {Action: ActionConfigure},
	"Configure":            {Action: ActionConfigure},
	"StartTrial":           {Action: ActionTune},
	"ConfirmTrial":         {Action: ActionTune},
	"RevertTrial":          {Action: ActionTune},
}

// Lookup returns the rule of a method; ok is false for methods the table
// does not know, which callers must deny.
func Lookup(method string) (rule Rule, ok bool) {
	rule, ok = Methods[method]
	return rule, ok
}

// ActionFor picks the action for a caller acting on a target owned by
// targetUID.
func (r Rule) ActionFor(callerUID, targetUID uint32) string {
	if r.OtherUserAction != "" && callerUID != targetUID {
		return r.OtherUserAction
	}
	return r.Action
}
