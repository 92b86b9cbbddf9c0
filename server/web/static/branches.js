// Branches: edit an earlier message or regenerate an answer, and the conversation forks
// from the checkpoint before that turn — LangGraph's time travel — keeping the old
// branch. A turn with more than one version shows "< 2 / 2 >" to switch between them.
//
// Everything is read from the thread's checkpoints (`POST /threads/{id}/history`): each
// checkpoint no other one descends from is the head of a branch. The versions of a turn
// are the heads that share the conversation before it, grouped by the message that
// starts the turn. The page shows one head; it is remembered per thread (localStorage),
// so a reload shows the branch last chosen, and new messages continue from it.

import { api, button as plainButton, element, openThread, page, send } from "./app.js";

const button = (text, label, onClick) => plainButton(text, label, onClick, "branch-action");

const HISTORY_LIMIT = 1000;
const $ = (id) => document.getElementById(id);

const branches = {
  threadId: null,
  byId: new Map(),
  children: new Map(),
  heads: [],
  head: null,
  firstSeen: new Map(),
  // A re-run's fork point: its run's head is the newest below it, not below the head shown.
  forkedFrom: null,
};

const storageKey = (threadId) => `alma-branch:${threadId}`;
const idOf = (state) => state.checkpoint.checkpoint_id;
const messagesOf = (state) => state.values?.messages || [];
// Checkpoint ids are time-ordered (uuid6): they sort as the checkpoints were written.
const newestFirst = (a, b) => (a < b ? 1 : a > b ? -1 : 0);

function contentText(content) {
  if (typeof content === "string") return content;
  return (content || []).filter((b) => b.type === "text").map((b) => b.text).join("");
}

// -- the thread's checkpoints, as a tree -----------------------------------------------

async function readTree(threadId) {
  const response = await api(`/threads/${encodeURIComponent(threadId)}/history`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ limit: HISTORY_LIMIT }),
  });
  if (!response.ok) return false;
  const history = await response.json();
  branches.threadId = threadId;
  branches.byId = new Map(history.map((state) => [idOf(state), state]));
  branches.children = new Map();
  branches.firstSeen = new Map();
  for (const state of history) {
    const parent = state.parent_checkpoint?.checkpoint_id;
    if (parent) branches.children.set(parent, [...(branches.children.get(parent) || []), state]);
    // When each message first appeared orders a turn's versions, oldest first.
    for (const message of messagesOf(state)) {
      const seen = branches.firstSeen.get(message.id);
      if (seen === undefined || idOf(state) < seen) branches.firstSeen.set(message.id, idOf(state));
    }
  }
  branches.heads = history.filter((state) => !branches.children.has(idOf(state)));
  branches.heads.sort((a, b) => newestFirst(idOf(a), idOf(b)));
  return true;
}

function ancestors(state) {
  const chain = [];
  for (let at = state; at; at = branches.byId.get(at.parent_checkpoint?.checkpoint_id)) chain.push(at);
  return chain;
}

/** The newest head at or below checkpoint `id` (a run may have continued its branch). */
function headFrom(id) {
  return branches.heads.find((head) => ancestors(head).some((state) => idOf(state) === id)) || null;
}

function choose(head) {
  branches.head = head;
  if (head) localStorage.setItem(storageKey(branches.threadId), idOf(head));
}

// -- hooks app.js calls ------------------------------------------------------------------

/** The state to show for `threadId`: its chosen branch's head (null: nothing stored yet). */
export async function branchState(threadId) {
  branches.head = null;
  if (!(await readTree(threadId))) return null;
  const remembered = localStorage.getItem(storageKey(threadId));
  choose((remembered && headFrom(remembered)) || branches.heads[0] || null);
  return branches.head;
}

/** The checkpoint a new message continues from: the shown branch's head. */
export function branchHead(threadId) {
  return branches.threadId === threadId && branches.head ? idOf(branches.head) : null;
}

// -- versions of a turn ----------------------------------------------------------------

function samePrefix(messages, prefix) {
  return prefix.every((message, i) => messages[i]?.id === message.id);
}

/** The versions of the turn starting at message `index` of the shown branch: [{id, heads}]. */
function versionsAt(index) {
  const prefix = messagesOf(branches.head).slice(0, index);
  const groups = new Map();
  for (const head of branches.heads) {
    const messages = messagesOf(head);
    if (messages.length <= index || !samePrefix(messages, prefix)) continue;
    const id = messages[index].id;
    groups.set(id, [...(groups.get(id) || []), head]);
  }
  return [...groups.entries()]
    .map(([id, heads]) => ({ id, heads }))
    .sort((a, b) => newestFirst(branches.firstSeen.get(b.id), branches.firstSeen.get(a.id)));
}

async function switchTo(version) {
  if (page.runId) return;
  // The newest head of that version: where its conversation went last.
  choose(version.heads[0]);
  await openThread(branches.threadId);
}

function switcher(index, versions) {
  const current = versions.findIndex((v) => v.id === messagesOf(branches.head)[index].id);
  const nav = element("nav", undefined, "branch-switch");
  nav.setAttribute("aria-label", "Versions of this turn");
  const previous = button("<", "Previous version", () => switchTo(versions[current - 1]));
  previous.disabled = current === 0;
  const next = button(">", "Next version", () => switchTo(versions[current + 1]));
  next.disabled = current === versions.length - 1;
  const where = element("span", `${current + 1} / ${versions.length}`, "branch-position");
  where.setAttribute("aria-label", `Version ${current + 1} of ${versions.length}`);
  nav.append(previous, where, next);
  return nav;
}

// -- re-running a turn -------------------------------------------------------------------

/**
 * The checkpoint to re-run the turn at message `index` from: the newest of the branch
 * holding exactly the messages before it. A service that saves a checkpoint only when a
 * run ends has none before the first turn; one is made by removing the turn's messages
 * (and what follows) in a state update at the checkpoint where it first appears.
 */
async function forkPoint(index) {
  const chain = ancestors(branches.head);
  const before = chain.find((state) => messagesOf(state).length === index);
  if (before) return idOf(before);
  const first = chain.filter((state) => messagesOf(state).length > index).pop();
  const removed = messagesOf(first).slice(index).map((m) => ({ type: "remove", id: m.id, content: "" }));
  const response = await api(`/threads/${encodeURIComponent(branches.threadId)}/state`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ checkpoint_id: idOf(first), values: { messages: removed } }),
  });
  if (!response.ok) throw new Error(`the conversation could not be forked (${response.status})`);
  return (await response.json()).checkpoint_id;
}

/** Re-run the turn at message `index` with `text`, from the DOM item `item` on. */
async function rerun(index, text, item) {
  if (page.runId || $("send").disabled) return;
  let from;
  try {
    from = await forkPoint(index);
  } catch (error) {
    const status = $("status");
    status.hidden = false;
    status.dataset.kind = "error";
    status.textContent = `Could not re-run: ${error.message}`;
    return;
  }
  // The turn and what followed it leave the page; the old branch stays on the server.
  while (item.nextElementSibling) item.nextElementSibling.remove();
  item.remove();
  branches.forkedFrom = from;
  await send(text, from);
}

function editor(index, item, text) {
  const article = item.querySelector("article");
  const shown = [...article.children];
  for (const child of shown) child.hidden = true;
  const form = element("form", undefined, "branch-edit");
  const field = element("textarea");
  field.value = text;
  field.rows = 3;
  field.setAttribute("aria-label", "Edit your message");
  field.maxLength = $("message").maxLength;
  const save = element("button", "Save and re-run");
  save.type = "submit";
  const cancel = button("Cancel", undefined, () => {
    form.remove();
    for (const child of shown) child.hidden = false;
  });
  form.append(field, save, cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const edited = field.value.trim();
    if (edited) rerun(index, edited, item);
  });
  article.append(form);
  field.focus();
}

// -- decorating the shown conversation -----------------------------------------------------

/**
 * Give each message on the page its actions: Edit on yours, Regenerate on answers, and
 * the version switcher on a turn that has more than one. Items are matched to the shown
 * branch's messages in order; items of sends the server refused have no message.
 */
function decorate() {
  for (const old of document.querySelectorAll("#messages .branch-actions")) old.remove();
  if (!branches.head) return;
  const messages = messagesOf(branches.head);
  const items = [...$("messages").children];
  let at = 0;
  let turnStart = -1;
  for (const [index, message] of messages.entries()) {
    const kind = message.type === "human" ? "user" : message.type === "ai" ? "assistant" : null;
    if (!kind) continue;
    while (at < items.length && !items[at].classList.contains(kind)) at += 1;
    const item = items[at];
    if (!item) return;
    at += 1;
    const actions = element("div", undefined, "branch-actions");
    if (kind === "user") {
      turnStart = index;
      const text = contentText(message.content);
      const versions = versionsAt(index);
      if (versions.length > 1) actions.append(switcher(index, versions));
      actions.append(button("Edit", "Edit this message", () => editor(index, item, text)));
    } else if (turnStart >= 0) {
      const start = turnStart;
      const text = contentText(messages[start].content);
      const userItem = items.slice(0, at - 1).reverse().find((node) => node.classList.contains("user"));
      actions.append(button("Regenerate", "Regenerate this answer", () => rerun(start, text, userItem)));
    }
    item.querySelector("article").append(actions);
  }
}

async function refresh() {
  if (!page.threadId) return;
  const shown = branches.head && branches.threadId === page.threadId ? idOf(branches.head) : null;
  const base = branches.forkedFrom || shown;
  branches.forkedFrom = null;
  if (!(await readTree(page.threadId))) return;
  // The run that just ended continued the shown branch (or the fork): its head is the
  // newest below.
  choose((base && headFrom(base)) || branches.heads[0] || null);
  decorate();
}

document.addEventListener("alma:restored", decorate);
document.addEventListener("alma:event", (event) => {
  const { method, params } = event.detail;
  const root = !params.namespace || params.namespace.length === 0;
  const ending = ["completed", "failed", "interrupted"].includes(params.data?.event);
  if (method === "lifecycle" && root && ending) refresh();
});
