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

/** A thread made with metadata: its history filtered by it, and its events' metadata keys. */
async function historyMetadata() {
  const thread = await newThread({ team: "x" });
  const run = await client.runs.create(thread, "manager", {
    input: HAIKU, context: CREATIVE, metadata: { asked_by: "ada" },
  });
  await client.runs.join(thread, run.run_id);
  const all = await client.threads.getHistory(thread, { limit: 100 });
  const team = await client.threads.getHistory(thread, { limit: 100, metadata: { team: "x" } });
  const asker = await client.threads.getHistory(thread, {
    limit: 100, metadata: { asked_by: "ada" },
  });
  const other = await client.threads.getHistory(thread, { limit: 100, metadata: { team: "y" } });
  const keys = new Set();
  for await (const part of client.runs.stream(thread, "manager", {
    input: HAIKU, context: CREATIVE, streamMode: ["messages-tuple", "events"],
  })) {
    const data = part.data;
    const metadata = part.event === "events" ? data?.metadata
      : Array.isArray(data) ? data[1] : null;
    for (const key of Object.keys(metadata ?? {})) keys.add(key);
  }
  return {
    facts: {
      created: run.status, history: all.length, of_the_team: team.length,
      of_the_asker: asker.length, of_another_team: other.length,
      checkpoint_keys: [...new Set(team.flatMap((s) => Object.keys(s.metadata)))].sort(),
      event_keys: [...keys].sort(),
    },
    raw: { run, team: team.slice(0, 1) },
  };
}

/** The store: items put, read, searched, listed and deleted under a root of this run's own. */
async function store() {
  const root = `js${Math.random().toString(36).slice(2, 10)}`;
  const local = (namespace) => namespace.slice(1);
  await client.store.putItem([root, "users", "u1"], "profile", { name: "u1", age: 30 });
  await client.store.putItem([root, "users", "u2"], "profile", { name: "u2", age: 41 });
  await client.store.putItem([root, "docs"], "d1", { body: "hello" }, { index: false });
  const got = await client.store.getItem([root, "users", "u1"], "profile", { refreshTtl: true });
  const missing = await client.store.getItem([root, "users", "u1"], "nope");
  const searched = await client.store.searchItems([root, "users"], {
    filter: { age: { $gte: 35 } },
  });
  const paged = await client.store.searchItems([root], { limit: 1, offset: 1 });
  const listed = await client.store.listNamespaces({ prefix: [root], maxDepth: 2 });
  const suffixed = await client.store.listNamespaces({ prefix: [root], suffix: ["u2"] });
  await client.store.deleteItem([root, "users", "u2"], "profile");
  return {
    facts: {
      got: [local(got.namespace), got.key, got.value], missing,
      searched: searched.items.map((item) => [local(item.namespace), item.key, item.value]),
      paged: paged.items.map((item) => [local(item.namespace), item.key]),
      listed: listed.namespaces.map(local), suffixed: suffixed.namespaces.map(local),
      after_delete: await client.store.getItem([root, "users", "u2"], "profile"),
      empty_namespace: await statusOf(client.store.putItem([], "k", {})),
    },
    raw: { got, searched, paged, listed },
  };
}

/** Crons, stateless and on a thread: searched, counted, updated, deleted (by a tag of their own). */
async function crons() {
  const tag = { run: Math.random().toString(36).slice(2, 10) };
  const thread = await newThread();
  const yearly = { schedule: "0 0 1 1 *", input: HAIKU, metadata: tag };
  const stateless = await client.crons.create("manager", { ...yearly, onRunCompleted: "keep" });
  const onThread = await client.crons.createForThread(thread, "manager", yearly);
  const found = await client.crons.search({ metadata: tag, sortBy: "created_at", sortOrder: "asc" });
  const ofThread = await client.crons.search({ threadId: thread });
  const counted = await client.crons.count({ metadata: tag });
  const updated = await client.crons.update(stateless.cron_id, { enabled: false });
  await client.crons.delete(stateless.cron_id);
  await client.crons.delete(onThread.cron_id);
  return {
    facts: {
      found: found.map((c) => [c.cron_id === stateless.cron_id, c.thread_id === thread]),
      of_thread: ofThread.map((c) => c.cron_id === onThread.cron_id),
      counted, enabled_after_update: updated.enabled,
      kept: stateless.on_run_completed, after_delete: await client.crons.count({ metadata: tag }),
      deleted_again: await statusOf(client.crons.delete(onThread.cron_id)),
    },
    raw: { stateless, onThread, found, updated },
  };
}

/** Batch runs, bulk cancel and prune: the bulk routes as the SDK calls them. */
async function bulk() {
  const batch = await client.runs.createBatch([
    // Kept, so that joining a run that has already ended still finds its thread.
    { assistantId: "manager", input: HAIKU, context: CREATIVE, on_completion: "keep" },
    { assistantId: "manager", input: HAIKU, context: CREATIVE, on_completion: "keep" },
  ]);
  for (const run of batch) await client.runs.join(run.thread_id, run.run_id);
  const thread = await newThread();
  const long = { router: "heuristic", max_plan_steps: 6 };
  const first = await client.runs.create(thread, "manager", { input: ANALYTICAL, context: long });
  const queued = await client.runs.create(thread, "manager", {
    input: HAIKU, context: CREATIVE, multitaskStrategy: "enqueue",
  });
  await client.runs.cancelMany({ threadId: thread, runIds: [first.run_id, queued.run_id] });
  for (const run of [first, queued]) await client.runs.join(thread, run.run_id);
  const runs = await client.runs.list(thread);
  const again = await statusOf(client.runs.cancelMany({ threadId: thread, runIds: [first.run_id] }));
  const pruned = await client.threads.prune([thread]);
  return {
    facts: {
      batch: batch.map((run) => run.status), cancelled: runs.map((run) => run.status),
      again, pruned, gone: await statusOf(client.threads.get(thread)),
    },
    raw: { batch, pruned },
  };
}

/**
 * A thread's join stream while a run goes: its events, and the same run again after the
 * run's first event with `lastEventId`.
 */
async function joinStream() {
  const thread = await newThread();
  // The stream follows the thread once the server has answered it: a run started before
  // could begin before it. The SDK has no hook for that answer; its fetch can say.
  let answered;
  const opened = new Promise((resolve) => { answered = resolve; });
  const watching = new Client({
    apiUrl: url,
    callerOptions: {
      fetch: async (...args) => {
        const response = await fetch(...args);
        answered();
        return response;
      },
    },
  });
  // The server holds a join stream open: aborting it is what ends the connection.
  const watched = new AbortController();
  const parts = watching.threads.joinStream(thread, { signal: watched.signal })[
    Symbol.asyncIterator
  ]();
  const first = parts.next();
  await opened;
  const run = await client.runs.create(thread, "manager", {
    input: HAIKU, context: CREATIVE, streamMode: ["values", "updates"], streamResumable: true,
  });
  const seen = [];
  for (let next = await first; !next.done; next = await parts.next()) {
    seen.push(next.value);
    if (next.value.event === "metadata" && next.value.data.status === "run_done") break;
  }
  watched.abort();
  const resumed = [];
  const again = new AbortController();
  const options = { lastEventId: seen[0].id, signal: again.signal };
  for await (const part of client.threads.joinStream(thread, options)) {
    resumed.push(part.event);
    if (part.event === "metadata" && part.data.status === "run_done") break;
  }
  again.abort();
  const raw = {};
  for (const part of seen) raw[part.event] ??= part.data;
  const values = seen.filter((part) => part.event === "values");
  return {
    facts: {
      events: sequence(seen.map((part) => part.event)),
      resumed: sequence(resumed),
      started: seen[0].data.run_id === run.run_id,
      ended: seen[seen.length - 1].data.run_id === run.run_id,
      text: lastText(values[values.length - 1].data),
    },
    raw,
  };
}

/**
 * Plan review over a WebSocket thread stream: the run stops with the plan
 * (`input.requested`, then `interrupted`), and an edited plan answered with
 * `input.respond` resumes it to the end.
 */
async function planReview() {
  const review = { router: "heuristic", max_plan_steps: 3, review_plan: true };
  const edited = ["Count the comparisons each makes", "Draw a conclusion with its caveats"];
  const thread = client.threads.stream({ assistantId: "manager", transport: "websocket" });
  try {
    const events = (await thread.subscribe(["lifecycle", "messages", "input"]))[
      Symbol.asyncIterator
    ]();
    const started = await thread.run.start({
      input: ANALYTICAL, config: { configurable: review },
    });
    const raw = { started };
    const names = [];
    let text = "";
    let asked = null;
    const follow = async (until) => {
      for (let next = await events.next(); !next.done; next = await events.next()) {
        const event = next.value;
        const data = event.params.data;
        // Where the interrupt is asked is compared apart (`asked_in`): LangGraph's
        // server, under load, sometimes first sees it on the root's update.
        const asking = event.method === "input.requested";
        const inside = event.params.namespace.length && !asking ? " (subgraph)" : "";
        const name = `${event.method}:${data.event ?? data.payload?.kind}${inside}`;
        names.push(name);
        raw[name] ??= event;
        if (event.method === "input.requested") asked = event;
        if (event.method === "messages" && data.event === "content-block-delta") {
          text += data.delta?.text ?? "";
        }
        if (event.method === "lifecycle" && !inside && data.event === until) return;
      }
    };
    await follow("interrupted");
    const interrupted = { flag: thread.interrupted, count: thread.interrupts.length };
    await thread.input.respond({
      namespace: asked.params.namespace,
      interrupt_id: asked.params.data.interrupt_id,
      response: { action: "edit", steps: edited },
    });
    await follow("completed");
    return {
      facts: {
        events: sequence(names), interrupted, payload: asked.params.data.payload,
        asked_in: asked.params.namespace.map((part) => part.split(":")[0]),
        follows_edit: edited.every((step) => text.includes(`**${step}**`)),
      },
      raw,
    };
  } finally {
    await thread.close();
  }
}

const SCENARIOS = {
  assistants,
  threads,
  "stream-modes": streamModes,
  "wait-join-state": waitJoinAndState,
  "history-metadata": historyMetadata,
  "cancel-multitask": cancelAndMultitask,
  "thread-stream-websocket": () => threadStream("websocket"),
  "thread-stream-sse": () => threadStream("sse"),
  store,
  crons,
  bulk,
  "join-stream": joinStream,
  "plan-review": planReview,
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
