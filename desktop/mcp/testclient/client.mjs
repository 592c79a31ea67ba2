// Drives npllm-agent's MCP bridge with the official TypeScript SDK client,
// for desktop/mcp's Go tests. Usage: node client.mjs '<plan JSON>'
//   plan: {"transport": "stdio", "command": "...", "args": [...], "env": {...}}
//      or {"transport": "http", "url": "http://127.0.0.1:N/mcp", "headers": {...}}
//   plus "steps": [{"op": "listTools"} | {"op": "callTool", "name", "arguments"} |
//     {"op": "readResource", "uri"} | {"op": "subscribe", "uri"} |
//     {"op": "waitUpdate", "uri", "timeoutMs"} | {"op": "listPrompts"} |
//     {"op": "getPrompt", "name", "arguments"}]
// Prints one JSON line per step as it completes: {"op", "result"} or
// {"op", "error"}; a failed connect prints {"op": "connect", "error", "code"}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const plan = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const transport = plan.transport === "http"
  ? new StreamableHTTPClientTransport(new URL(plan.url), { requestInit: { headers: plan.headers || {} } })
  : new StdioClientTransport({ command: plan.command, args: plan.args || [], env: plan.env, stderr: "inherit" });

const client = new Client({ name: "npllm-test-client", version: "1.0.0" });
const updates = [];
let wake = null;
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
  updates.push(n.params.uri);
  if (wake) wake();
});

try {
  await client.connect(transport);
} catch (e) {
  // StreamableHTTPError carries the HTTP status as code.
  out({ op: "connect", error: String(e && e.message || e), code: e && e.code });
  process.exit(0);
}

for (const step of plan.steps) {
  try {
    let result;
    switch (step.op) {
      case "listTools": result = await client.listTools(); break;
      case "callTool": result = await client.callTool({ name: step.name, arguments: step.arguments || {} }); break;
      case "readResource": result = await client.readResource({ uri: step.uri }); break;
      case "subscribe": result = await client.subscribeResource({ uri: step.uri }); break;
      case "listPrompts": result = await client.listPrompts(); break;
      case "getPrompt": result = await client.getPrompt({ name: step.name, arguments: step.arguments || {} }); break;
      case "waitUpdate": {
        const deadline = Date.now() + (step.timeoutMs || 10000);
        while (!updates.includes(step.uri) && Date.now() < deadline) {
          await new Promise((r) => { wake = r; setTimeout(r, 100); });
        }
        if (!updates.includes(step.uri)) throw new Error("no notifications/resources/updated for " + step.uri);
        result = { updates: [...updates] };
        updates.splice(updates.indexOf(step.uri), 1); // the next wait waits for the next update
        break;
      }
      default: throw new Error("unknown op " + step.op);
    }
    out({ op: step.op, name: step.name, result });
  } catch (e) {
    out({ op: step.op, name: step.name, error: String(e && e.message || e) });
  }
}
await client.close();
process.exit(0);
