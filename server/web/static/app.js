// The ALMA page: a conversation with the manager, streamed as it happens, with the
// graph's progress and each answer's figures. It speaks the same protocol as every
// other client (protocol.js) and builds every element from text, never from HTML.

import { renderMarkdown } from "./markdown.js";
import { branchHead, branchState } from "./branches.js";
import { CommandError, ThreadStream } from "./protocol.js";

const ANSWER_NODES = new Set(["compose", "refine", "synthesise"]);
const NOTE_NODES = new Set(["analyse"]);
const $ = (id) => document.getElementById(id);

const page = {
  info: null,
  key: sessionStorage.getItem("alma-key") || "",
  threadId: null,
  stream: null,
  turn: null,
  runId: null,
  shownRunId: null,
  skipping: false,
  limitedUntil: 0,
};

// -- small helpers ---------------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, label, onClick, className) {
  const node = element("button", text, className);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

function say(text, kind = "info") {
  const status = $("status");
  status.hidden = !text;
  status.textContent = text || "";
  status.dataset.kind = kind;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (page.key) headers.authorization = `Bearer ${page.key}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) askKey("The key was missing or not accepted.");
  return response;
}

function newThreadId() {
  return crypto.randomUUID();
}

// -- one answer --------------------------------------------------------------------------

class Turn {
  constructor() {
    this.root = $("assistant-template").content.firstElementChild.cloneNode(true);
    this.answer = this.root.querySelector(".answer");
    this.text = "";
    this.frame = 0;
    this.tasks = new Map();
    this.steps = [];
    this.currentStep = null;
    $("messages").append(this.root);
    this.root.scrollIntoView({ block: "end" });
  }

  addText(text) {
    this.text += text;
    // One render per frame however fast tokens arrive.
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  render() {
    this.answer.replaceChildren(renderMarkdown(this.text));
    this.root.scrollIntoView({ block: "end" });
  }

  newAnswerMessage() {
    // A refining pass rewrites the draft: the draft stays readable, folded away.
    if (!this.text) return;
    const draft = element("details", undefined, "draft");
    draft.append(element("summary", "First draft"));
    draft.append(renderMarkdown(this.text));
    this.answer.before(draft);
    this.text = "";
    this.render();
  }

  showRoute(decision) {
    const route = this.root.querySelector(".route");
    route.hidden = false;
    route.replaceChildren(
      element("strong", `Route: ${decision.route}`),
      ` — ${decision.reason} (decided by ${decision.decided_by}, confidence ${Number(decision.confidence).toFixed(2)})`,
    );
    this.root.dataset.route = decision.route;
  }

  showPlan(steps) {
    const plan = this.root.querySelector(".plan");
    plan.hidden = false;
    plan.replaceChildren();
    this.steps = steps.map((label) => {
      const item = element("li", undefined, "step pending");
      item.append(element("span", label, "label"), element("span", "waiting", "state"));
      plan.append(item);
      return item;
    });
  }

  stepProgress(event) {
    const item = this.steps[event.step - 1];
    if (!item) return;
    const done = event.status === "finished";
    item.className = `step ${done ? "done" : "running"}`;
    item.querySelector(".state").textContent = done ? "done" : "working…";
    this.currentStep = done ? null : item;
  }

  addNote(text) {
    if (!this.currentStep) return;
    let note = this.currentStep.querySelector(".note");
    if (!note) {
      note = element("div", undefined, "note");
      note.dataset.text = "";
      this.currentStep.append(note);
    }
    note.dataset.text += text;
    note.replaceChildren(renderMarkdown(note.dataset.text));
  }

  task(namespace, data) {
    const nodes = this.root.querySelector(".nodes");
    if (data.duration_ms === undefined) {
      const item = element("li", undefined, "node running");
      item.style.setProperty("--depth", namespace.length);
      item.append(element("span", data.name, "name"), element("span", "running", "state"));
      nodes.append(item);
      this.tasks.set(data.id, item);
      return;
    }
    const item = this.tasks.get(data.id);
    if (!item) return;
    item.className = `node ${data.error ? "failed" : "done"}`;
    item.querySelector(".state").textContent = data.error ? `failed after ${ms(data.duration_ms)}` : ms(data.duration_ms);
  }

  finish(data) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.render();
    // An interrupted run waits for the plan's review (plan_review.js): not a failure.
    const fine = data.event === "completed" || data.event === "interrupted";
    this.root.dataset.state = fine ? data.event : data.code || "failed";
    for (const item of this.tasks.values()) {
      if (item.classList.contains("running")) {
        item.className = "node stopped";
        item.querySelector(".state").textContent = "stopped";
      }
    }
    if (!fine) this.fail(describeFailure(data.code, data.error));
    this.figures(data);
  }

  fail(text) {
    const outcome = this.root.querySelector(".outcome");
    outcome.hidden = false;
    outcome.textContent = text;
    this.root.dataset.state = this.root.dataset.state || "failed";
  }

  figures(data) {
    const figures = this.root.querySelector(".figures");
    const models = Object.values(data.models || {});
    const prompt = models.reduce((sum, m) => sum + m.prompt_tokens, 0);
    const completion = models.reduce((sum, m) => sum + m.completion_tokens, 0);
    const rows = [
      ["First token", ms(data.time_to_first_token_ms)],
      ["Speed", data.tokens_per_second ? `${Math.round(data.tokens_per_second)} tokens/s` : "–"],
      ["Total", ms(data.duration_ms)],
      ["Tokens", `${prompt} prompt / ${completion} completion`],
      ["Cost", `$${(data.cost_usd || 0).toFixed(4)}`],
    ];
    figures.replaceChildren();
    for (const [name, value] of rows) {
      const group = element("div");
      group.append(element("dt", name), element("dd", value));
      figures.append(group);
    }
    if (data.trace_url) {
      const group = element("div");
      const link = element("a", "LangSmith trace");
      link.href = data.trace_url;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      const dd = element("dd");
      dd.append(link);
      group.append(element("dt", "Trace"), dd);
      figures.append(group);
    }
    figures.hidden = false;
  }
}

function describeFailure(code, message) {
  switch (code) {
    case "cancelled":
      return "Stopped. The text so far is kept in the conversation.";
    case "provider_unavailable":
    case "provider_timeout":
    case "provider_rate_limited":
      return `The model provider is failing right now, even after retries. Try again in a moment. (${message})`;
    case "provider_rejected":
      return `The model provider refused this request. (${message})`;
    case "context_overflow":
      return "That message is too long for the model. Try a shorter one.";
    case "storage_unavailable":
      return "Conversation storage is unavailable, so this answer could not be kept. Try again shortly.";
    default:
      return `Something went wrong inside ALMA: ${message || code}`;
  }
}

// -- the conversation -------------------------------------------------------------------

function addUserTurn(text) {
  const item = element("li", undefined, "turn user");
  const article = element("article");
  article.setAttribute("aria-label", "Your message");
  article.append(element("p", text));
  item.append(article);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
}

function contentText(content) {
  if (typeof content === "string") return content;
  return (content || []).filter((b) => b.type === "text").map((b) => b.text).join("");
}

function setRunning(running) {
  $("stop").disabled = !running;
  $("send").disabled = running || Date.now() < page.limitedUntil;
  $("messages").setAttribute("aria-busy", String(running));
}

function onEvent(event) {
  // Other parts of the page (plan_review.js) follow the events too.
  document.dispatchEvent(new CustomEvent("alma:event", { detail: event }));
  const { method, params } = event;
  const data = params.data || {};
  const root = !params.namespace || params.namespace.length === 0;
  const ending = method === "lifecycle" && root && ["completed", "failed", "interrupted"].includes(data.event);
  if (method === "lifecycle" && root && data.event === "running" && data.run_id === page.shownRunId) {
    // The thread's newest run is replayed to a new subscriber; its answer is on the page
    // already, from the thread's state.
    page.skipping = true;
    return;
  }
  if (page.skipping) {
    if (ending) page.skipping = false;
    return;
  }
  if (method === "lifecycle" && root && data.event === "running") {
    // The turn `send` opened is this run's, whichever of its answer and this event came
    // first; a run started elsewhere (another tab) gets a turn of its own.
    if (!page.turn || (page.turn.runId && page.turn.runId !== data.run_id)) page.turn = new Turn();
    page.turn.runId = data.run_id;
    page.runId = data.run_id;
    setRunning(true);
    return;
  }
  const turn = page.turn;
  if (!turn) return;
  if (method === "messages") {
    if (ANSWER_NODES.has(params.node)) {
      if (data.event === "message-start") turn.newAnswerMessage();
      else if (data.event === "content-block-delta" && data.delta?.type === "text-delta") turn.addText(data.delta.text);
    } else if (NOTE_NODES.has(params.node) && data.event === "content-block-delta" && data.delta?.type === "text-delta") {
      turn.addNote(data.delta.text);
    }
  } else if (method === "updates" && root && data.values?.decision) {
    turn.showRoute(data.values.decision);
  } else if (method === "custom") {
    const payload = data.payload || {};
    if (payload.type === "plan") turn.showPlan(payload.steps || []);
    else if (payload.type === "progress") turn.stepProgress(payload);
  } else if (method === "tasks") {
    turn.task(params.namespace || [], data);
  } else if (ending) {
    turn.finish(data);
    page.turn = null;
    page.runId = null;
    setRunning(false);
    refreshThreads();
    refreshLive();
  }
}

function onState(state, detail) {
  if (state === "open") {
    if ($("status").dataset.kind === "connection") say("Reconnected; the answer continues where it stopped.", "connection-ok");
    return;
  }
  if (state === "reconnecting") {
    const why = detail.reason === "restarting" ? "The server is restarting"
      : detail.reason === "too-slow" ? "The connection fell behind" : "Connection lost";
    say(`${why} — reconnecting… Nothing you have seen will be lost or repeated.`, "connection");
  } else if (state === "needs-key") {
    askKey(`The server refused the connection: ${detail}`);
  }
}

async function openThread(threadId) {
  if (page.stream) page.stream.close();
  page.threadId = threadId;
  page.turn = null;
  page.runId = null;
  localStorage.setItem("alma-thread", threadId);
  $("messages").replaceChildren();
  // Nothing can be sent until this thread's stream exists: a message sent before would
  // go nowhere (or to the thread left behind).
  page.stream = null;
  page.shownRunId = null;
  page.skipping = false;
  $("send").disabled = true;
  // The newest run, read before the state: if it has ended, the state holds its answer.
  const runs = await api(`/threads/${encodeURIComponent(threadId)}/runs?limit=1`);
  if (runs.ok) {
    const [newest] = await runs.json();
    if (newest && !["pending", "running"].includes(newest.status)) page.shownRunId = newest.run_id;
  }
  // The branch chosen last (branches.js); else the thread's latest state.
  let state = await branchState(threadId);
  if (!state) {
    const response = await api(`/threads/${encodeURIComponent(threadId)}/state`);
    if (response.ok) state = await response.json();
  }
  if (state) {
    for (const message of state.values.messages || []) {
      if (message.type === "human") addUserTurn(contentText(message.content));
      else if (message.type === "ai") {
        const turn = new Turn();
        turn.text = contentText(message.content);
        turn.render();
        turn.root.querySelector(".progress").hidden = true;
        if (message.response_metadata?.cancelled) turn.fail(describeFailure("cancelled"));
      }
    }
    // Other parts of the page (plan_review.js) restore what the state holds besides messages.
    document.dispatchEvent(new CustomEvent("alma:restored", { detail: state }));
  }
  page.stream = new ThreadStream({ threadId, key: page.key, onEvent, onState });
  page.stream.open();
  setRunning(false);
  markCurrentThread();
}

// `from`: the checkpoint to run from (a branch, or a fork point); by default the shown branch's head.
async function send(text, from = branchHead(page.threadId)) {
  if (Date.now() < page.limitedUntil) return;
  addUserTurn(text);
  page.turn = new Turn();
  setRunning(true);
  const route = $("route").value;
  try {
    const result = await page.stream.command("run.start", {
      assistant_id: "manager",
      input: { messages: [{ role: "user", content: text }] },
      ...(from ? { checkpoint_id: from } : {}),
      context: { ...(route ? { route } : {}), ...($("review-plan").checked ? { review_plan: true } : {}) },
    });
    page.runId = result.run_id;
    if (page.turn && !page.turn.runId) page.turn.runId = result.run_id;
  } catch (error) {
    const turn = page.turn;
    page.turn = null;
    setRunning(false);
    turn.root.querySelector(".progress").hidden = true;
    if (error instanceof CommandError && error.retryAfter) {
      rateLimited(error);
      turn.fail(`Not sent: the rate limit was reached. ${error.message}`);
    }
    else if (error instanceof CommandError && error.code === "not_supported") {
      turn.fail("The server is shutting down; send again in a moment and another one will answer.");
    } else turn.fail(`The message was not accepted: ${error.message}`);
    turn.root.dataset.state = error.code || "refused";
  }
}

function rateLimited(error) {
  page.limitedUntil = Date.now() + error.retryAfter * 1000;
  $("send").disabled = true;
  const tick = () => {
    const left = Math.ceil((page.limitedUntil - Date.now()) / 1000);
    if (left <= 0) {
      say("You can send again.", "limit-over");
      $("send").disabled = !!page.runId;
      return;
    }
    say(`Rate limit reached — ${error.message.replace(/; retry in \d+ s$/, "")}. You can send again in ${left} s.`, "limit");
    setTimeout(tick, 1000);
  };
  tick();
}

async function stop() {
  if (!page.runId) return;
  try {
    await page.stream.command("run.cancel", { run_id: page.runId });
  } catch (error) {
    if (error.code !== "no_such_run") say(`Could not stop the answer: ${error.message}`, "error");
  }
}

// -- threads, live figures, key -------------------------------------------------------------

function showHint() {
  $("hint").hidden = $("messages").children.length > 0;
}

function markCurrentThread() {
  for (const button of document.querySelectorAll("#thread-list button")) {
    if (button.dataset.thread === page.threadId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

async function refreshThreads() {
  const response = await api("/threads?limit=30");
  if (!response.ok) return;
  const threads = await response.json();
  const list = $("thread-list");
  list.replaceChildren();
  for (const thread of threads) {
    const item = element("li");
    const button = element("button", thread.title || "(untitled)");
    button.type = "button";
    button.dataset.thread = thread.thread_id;
    const when = new Date(thread.updated_at * 1000);
    button.title = `Last answer ${when.toLocaleString()}`;
    button.addEventListener("click", () => openThread(thread.thread_id));
    item.append(button);
    list.append(item);
  }
  markCurrentThread();
}

async function refreshLive() {
  try {
    // Keyed like every route when the service requires keys; a figure that cannot be
    // read yet is not a reason to ask for the key again.
    const headers = page.key ? { authorization: `Bearer ${page.key}` } : {};
    const response = await fetch("/stats", { headers });
    if (!response.ok) return;
    const { live } = await response.json();
    $("live-active").textContent = String(Math.round(live.runs_active));
    $("live-ttft").textContent = ms(live.ttft_p95_ms);
  } catch {
    // The figures wait for the next tick; the conversation's own banner reports outages.
  }
}

function askKey(reason) {
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason;
  if (!dialog.open) dialog.showModal();
  $("key").focus();
}

function useKey(key) {
  page.key = key.trim();
  sessionStorage.setItem("alma-key", page.key);
  say("");
  openThread(page.threadId || newThreadId());
  refreshThreads();
}

// -- start -------------------------------------------------------------------------------

async function start() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value.trim();
    if (!text || $("send").disabled) return;
    $("message").value = "";
    send(text);
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && page.runId && !$("key-dialog").open) stop();
  });
  $("stop").addEventListener("click", stop);
  $("new-thread").addEventListener("click", () => {
    openThread(newThreadId());
    $("message").focus();
  });
  $("key-form").addEventListener("submit", () => useKey($("key").value));
  for (const example of document.querySelectorAll("#hint .example")) {
    example.addEventListener("click", () => {
      if (!$("send").disabled) send(example.textContent);
    });
  }
  // The hint shows only while the conversation is empty, however it became so.
  new MutationObserver(showHint).observe($("messages"), { childList: true });

  page.info = await (await fetch("/info")).json();
  $("simulated").hidden = !page.info.simulated_model;
  $("message").maxLength = page.info.max_message_chars;
  refreshLive();
  setInterval(refreshLive, 5000);
  if (page.info.auth_required && !page.key) {
    page.threadId = localStorage.getItem("alma-thread") || newThreadId();
    askKey("This service needs an API key.");
    return;
  }
  await openThread(localStorage.getItem("alma-thread") || newThreadId());
  showHint();
  refreshThreads();
  $("message").focus();
}

start();

export { api, button, element, openThread, page, send, setRunning, Turn };
