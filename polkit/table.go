// Package polkit authorizes npllmd's methods: one table says which polkit
// action guards which method (anything not in it is denied), and an
// authority client asks polkitd about the caller's unique bus name.
package polkit

// polkit action ids, declared in packaging/polkit/org.npllm.Assistant.policy.
const (
	ActionManageOwnProcess = "org.npllm.Assistant.manage-own-process"
	ActionManageAnyProcess = "org.npllm.Assistant.manage-any-process"
	ActionManageUnits      = "org.npllm.Assistant.manage-units"
	ActionConfigure        = "org.npllm.Assistant.configure"
)

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
	"GetCounters":      {ReadOnly: true},

	"SignalProcess":        {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"SetProcessPriority":   {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"SetProcessIOPriority": {Action: ActionManageOwnProcess, OtherUserAction: ActionManageAnyProcess},
	"ManageUnit":           {Action: ActionManageUnits},
	"SetSensorEnabled":     {Action: ActionConfigure},
	"ForgetBaseline":       {Action: ActionConfigure},
	"Configure":            {Action: ActionConfigure},
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
