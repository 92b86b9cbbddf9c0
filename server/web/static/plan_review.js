// Plan review: with "Review the plan" ticked, an analytical answer stops after its plan
// (the run ends `interrupted`, and an `input.requested` event carries the plan). The plan
// is shown as an editable list — rewrite, reorder, remove or add steps — with Approve
// and Reject; the answer is sent with `input.respond`, and the resumed run streams on in
// the same turn. Every element is built from text, never from HTML.
//
// The interrupt lives in the thread's checkpoint, not in the page: a page opened (or
// reloaded) on a thread that waits for review finds it in the thread's state and shows
// the same form, however long ago and by whichever process the run stopped.

import { api, button, element, page, setRunning, Turn } from "./app.js";

const PLAN_REVIEW = "plan_review";
const $ = (id) => document.getElementById(id);

/** The review form for one interrupt, shown inside the turn it stopped. */
class PlanReview {
  constructor(turn, { namespace, interruptId, payload }) {
    this.turn = turn;
    this.namespace = namespace;
    this.interruptId = interruptId;
    this.payload = payload;
    this.root = element("section", undefined, "plan-review");
    this.root.dataset.interruptId = interruptId;
    this.root.setAttribute("aria-label", "Plan review");
    this.list = element("ol", undefined, "review-steps");
    this.message = element("p", "", "review-message");
    this.message.setAttribute("role", "alert");
    this.build();
    turn.root.querySelector("article").append(this.root);
    this.root.scrollIntoView({ block: "end" });
    this.list.querySelector("input")?.focus();
  }

  build() {
    const { steps, max_steps: most, error } = this.payload;
    this.root.append(
      element("h3", "Review the plan"),
      element("p", `Edit, reorder, remove or add steps (at most ${most}), then approve; or reject the plan.`, "help"),
    );
    if (error) this.message.textContent = `The last answer was refused: ${error}`;
    for (const step of steps) this.addStep(step);
    const add = button("Add step", undefined, () => {
      if (this.inputs().length >= most) {
        this.message.textContent = `A plan may have at most ${most} steps.`;
        return;
      }
      this.addStep("").querySelector("input").focus();
    });
    const actions = element("div", undefined, "review-actions");
    actions.append(
      add,
      button("Approve", "Approve the plan", () => this.answer("approve")),
      button("Reject", "Reject the plan", () => this.answer("reject")),
    );
    this.root.append(this.list, this.message, actions);
  }

  inputs() {
    return [...this.list.querySelectorAll("input")];
  }

  addStep(text) {
    const item = element("li", undefined, "review-step");
    const input = element("input");
    input.type = "text";
    input.value = text;
    input.maxLength = 300;
    item.append(
      input,
      button("↑", "Move step up", () => item.previousElementSibling?.before(item)),
      button("↓", "Move step down", () => item.nextElementSibling?.after(item)),
      button("✕", "Remove step", () => item.remove()),
    );
    this.list.append(item);
    this.renumber();
    return item;
  }

  renumber() {
    // Each field names its place, so a screen reader (and a test) can tell them apart.
    this.inputs().forEach((input, index) => input.setAttribute("aria-label", `Step ${index + 1}`));
  }

  async answer(action) {
    const steps = this.inputs().map((input) => input.value.trim()).filter(Boolean);
    const same = steps.length === this.payload.steps.length
      && steps.every((step, index) => step === this.payload.steps[index]);
    let response = { action };
    if (action === "approve" && !same) {
      if (!steps.length) {
        this.message.textContent = "The plan needs at least one step; reject it instead.";
        return;
      }
      response = { action: "edit", steps };
    }
    for (const control of this.root.querySelectorAll("button, input")) control.disabled = true;
    // The resumed run's events continue this turn rather than opening another.
    page.turn = this.turn;
    this.turn.runId = null;
    this.turn.root.dataset.state = "";
    setRunning(true);
    try {
      await page.stream.command("input.respond", {
        namespace: this.namespace, interrupt_id: this.interruptId, response,
      });
      this.root.remove();
      if (action === "reject") reviews.rejected = this.turn;
    } catch (error) {
      for (const control of this.root.querySelectorAll("button, input")) control.disabled = false;
      page.turn = null;
      setRunning(false);
      this.message.textContent = `The answer was not accepted: ${error.message}`;
    }
  }
}

const reviews = { rejected: null };

function onPage(interruptId) {
  return [...document.querySelectorAll(".plan-review")].some((form) => form.dataset.interruptId === interruptId);
}

/** The plan review a thread's state waits on, or null; it is filed under the task that stopped. */
function pendingReview(state) {
  for (const task of state.tasks || []) {
    const pending = (task.interrupts || []).find((interrupt) => interrupt.value?.kind === PLAN_REVIEW);
    // The namespace the protocol names the subgraph by: its task's name and id.
    if (pending) return { namespace: [`${task.name}:${task.id}`], interruptId: pending.id, payload: pending.value };
  }
  return null;
}

function restore(state) {
  // A run still going when the page opened is replayed live, its interrupt included.
  if (page.shownRunId === null) return;
  const pending = pendingReview(state);
  if (!pending || onPage(pending.interruptId)) return;
  const turn = new Turn();
  turn.root.dataset.state = "interrupted";
  if (state.values?.decision) turn.showRoute(state.values.decision);
  // The plan as proposed, so the resumed run's step progress has its list to mark.
  turn.showPlan(pending.payload.steps || []);
  new PlanReview(turn, pending);
}

async function showRejection(turn) {
  // The rejection's answer is written whole, not streamed: it is read from the state.
  const response = await api(`/threads/${encodeURIComponent(page.threadId)}/state`);
  if (!response.ok) return;
  const messages = (await response.json()).values.messages || [];
  const last = messages[messages.length - 1];
  if (last?.type !== "ai" || turn.text) return;
  turn.text = typeof last.content === "string" ? last.content : "";
  turn.render();
}

document.addEventListener("alma:event", ({ detail: event }) => {
  const { method, params } = event;
  const data = params.data || {};
  // The stopped run's replay (page.skipping) repeats a request the state has shown already.
  const asked = method === "input.requested" && data.payload?.kind === PLAN_REVIEW;
  if (asked && page.turn && !page.skipping && !onPage(data.interrupt_id)) {
    new PlanReview(page.turn, { namespace: params.namespace || [], interruptId: data.interrupt_id, payload: data.payload });
  } else if (method === "lifecycle" && !params.namespace?.length && data.event === "completed" && reviews.rejected) {
    const turn = reviews.rejected;
    reviews.rejected = null;
    showRejection(turn);
  }
});

// app.js has drawn the conversation from the thread's state; a pending review joins it.
document.addEventListener("alma:restored", ({ detail: state }) => restore(state));

// A run asks for review when the box is ticked (app.js reads it into the run context).
$("review-plan")?.addEventListener("change", (event) => {
  localStorage.setItem("alma-review-plan", event.target.checked ? "1" : "");
});
if ($("review-plan")) $("review-plan").checked = !!localStorage.getItem("alma-review-plan");
