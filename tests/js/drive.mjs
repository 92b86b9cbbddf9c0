// Drives a LangGraph server with the official JavaScript SDK and prints what it saw as
// JSON on stdout, so that tests/integration/test_js_sdk.py can run the same scenario
// against ALMA and `langgraph dev` and compare the two.
//
//   node tests/js/drive.mjs <scenario> <server url>
//
// Every scenario prints `facts` that must be equal on both servers (event names in
// order, statuses, the answer's text) and the `raw` answers, compared by shape.
import { Client } from "@langchain/langgraph-sdk";

const [scenario, url] = process.argv.slice(2);
const client = new Client({ apiUrl: url });

const ANALYTICAL = { messages: [{ role: "user", content: "Compare quicksort and mergesort" }] };
const SHORT = { router: "heuristic", max_plan_steps: 2 };
const HAIKU = { messages: [{ role: "user", content: "Write a haiku about rivers" }] };
const CREATIVE = { route: "creative" };
const UUID = /:[0-9a-f-]{36}/g;

/** Event names in order, with the subgraph task ids taken out and repeats folded. */
function sequence(names) {
  const folded = [];
  for (const name of names.map((n) => n.replace(UUID, ""))) {
    const last = folded[folded.length - 1];
    if (last && last[0] === name) last[1] += 1;
    else folded.push([name, 1]);
  }
  return folded.map(([name, count]) => (count > 1 ? `${name} x${count}` : name));
}

function lastText(values) {
  const messages = values?.messages ?? [];
  const last = messages[messages.length - 1];
  if (!last) return "";
  return typeof last.content === "string"
    ? last.content
    : last.content.map((block) => block.text ?? "").join("");
}

async function newThread(metadata) {
  return (await client.threads.create(metadata ? { metadata } : undefined)).thread_id;
}

async function statusOf(promise) {
  try {
    await promise;
    return 200;
  } catch (error) {
    return error.status ?? error.response?.status ?? String(error);
  }
}

async function streamModes() {
  const modes = [
    [["values"], true], [["updates"], true], [["messages-tuple"], true], [["custom"], true],
    [["tasks"], true], [["checkpoints"], true], [["debug"], true], [["values"], false],
    [["values", "updates", "messages-tuple", "custom"], true],
  ];
  const facts = {};
  const raw = {};
  for (const [streamMode, streamSubgraphs] of modes) {
    const thread = await newThread();
    const names = [];
    const mode = `${streamMode.join("+")}${streamSubgraphs ? " subgraphs" : ""}`;
    raw[mode] = {};
    for await (const part of client.runs.stream(thread, "manager", {
      input: ANALYTICAL, context: SHORT, streamMode, streamSubgraphs,
    })) {
      names.push(part.event);
      raw[mode][part.event.replace(UUID, "")] ??= part.data;
    }
    facts[mode] = sequence(names);
  }
  return { facts, raw };
}

async function assistants() {
  const [found] = await client.assistants.search({ graphId: "manager" });
  const assistant = await client.assistants.get(found.assistant_id);
  const graph = await client.assistants.getGraph(found.assistant_id);
  const schemas = await client.assistants.getSchemas(found.assistant_id);
  return {
    facts: {
      assistant_id: assistant.assistant_id, graph_id: assistant.graph_id,
      graph_nodes: graph.nodes.map((node) => node.id).sort(),
    },
    raw: { found, assistant, graph, schemas },
  };
}

async function threads() {
  const created = await client.threads.create({ metadata: { team: "js" } });
  const got = await client.threads.get(created.thread_id);
  const updated = await client.threads.update(created.thread_id, { metadata: { level: 2 } });
  const found = await client.threads.search({ metadata: { team: "js" }, limit: 100 });
  await client.threads.delete(created.thread_id);
  return {
    facts: {
      status: got.status, metadata: updated.metadata,
      found: found.some((t) => t.thread_id === created.thread_id),
      after_delete: await statusOf(client.threads.get(created.thread_id)),
    },
    raw: { created, got, updated, found: found.slice(0, 1) },
  };
}

async function waitJoinAndState() {
  const thread = await newThread({ team: "js" });
  const waited = await client.runs.wait(thread, "manager", { input: HAIKU, context: CREATIVE });
  const run = await client.runs.create(thread, "manager", { input: ANALYTICAL, context: SHORT });
  const joined = await client.runs.join(thread, run.run_id);
  const state = await client.threads.getState(thread);
  const history = await client.threads.getHistory(thread, { limit: 100 });
  const teams = await client.threads.getHistory(thread, { limit: 100, metadata: { team: "js" } });
  const runs = await client.runs.list(thread);
  const stateless = await client.runs.wait(null, "manager", { input: HAIKU, context: CREATIVE });
  return {
    facts: {
      waited_text: lastText(waited), joined_text: lastText(joined),
      state_next: state.next, state_messages: state.values.messages.map((m) => m.type),
      history_length: history.length, history_of_the_team: teams.length,
      run_statuses: runs.map((r) => r.status).sort(),
      stateless_text: lastText(stateless),
    },
    raw: { created: run, waited, joined, state, history, runs, stateless },
  };
}

async function cancelAndMultitask() {
  const thread = await newThread();
  const long = { router: "heuristic", max_plan_steps: 6 };
  const first = await client.runs.create(thread, "manager", { input: ANALYTICAL, context: long });
  const rejected = await statusOf(client.runs.create(thread, "manager", {
    input: HAIKU, context: CREATIVE, multitaskStrategy: "reject",
  }));
  const queued = await client.runs.create(thread, "manager", {
    input: HAIKU, context: CREATIVE, multitaskStrategy: "enqueue",
  });
  await client.runs.cancel(thread, first.run_id, true);
  await client.runs.join(thread, queued.run_id);
  const runs = await client.runs.list(thread);
  const status = (id) => runs.find((r) => r.run_id === id)?.status;
  return {
    facts: {
      rejected, runs: runs.length,
      cancelled: status(first.run_id), queued: status(queued.run_id),
    },
    raw: { runs },
  };
}

/** A thread stream over `transport`: the protocol events of one run, and its answer. */
async function threadStream(transport) {
  const thread = client.threads.stream({ assistantId: "manager", transport });
  try {
    const events = await thread.subscribe(["lifecycle", "messages"]);
    const started = await thread.run.start({ input: HAIKU, config: { configurable: CREATIVE } });
    const names = [];
    const raw = { started };
    let text = "";
    for await (const event of events) {
      const data = event.params.data;
      const inside = event.params.namespace.length ? " (subgraph)" : "";
      const name = `${event.method}:${data.event}${inside}`;
      names.push(name);
      raw[name] ??= event;
      if (event.method === "messages" && data.event === "content-block-delta") {
        text += data.delta?.text ?? "";
      }
      if (event.method === "lifecycle" && !inside
          && ["completed", "failed", "interrupted"].includes(data.event)) break;
    }
    return { facts: { events: sequence(names), text }, raw };
  } finally {
    await thread.close();
  }
}

const SCENARIOS = {
  assistants,
  threads,
  "stream-modes": streamModes,
  "wait-join-state": waitJoinAndState,
  "cancel-multitask": cancelAndMultitask,
  "thread-stream-websocket": () => threadStream("websocket"),
  "thread-stream-sse": () => threadStream("sse"),
};

const run = SCENARIOS[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(SCENARIOS).join(", ")}`);
  process.exit(2);
}
// A scenario that hangs (a frame the SDK cannot read) fails instead of stalling the suite.
const timer = setTimeout(() => {
  console.error(`${scenario} did not finish in 90 s`);
  process.exit(3);
}, 90_000);
try {
  process.stdout.write(JSON.stringify(await run()) + "\n");
} finally {
  clearTimeout(timer);
}
