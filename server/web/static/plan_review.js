// Plan review: with "Review the plan" ticked, an analytical answer stops after its plan
// (the run ends `interrupted`, and an `input.requested` event carries the plan). The plan
// is shown as an editable list — rewrite, reorder, remove or add steps — with Approve
// and Reject; the answer is sent with `input.respond`, and the resumed run streams on in
// the same turn. Every element is built from text, never from HTML.

import { api, page, setRunning } from "./app.js";

const PLAN_REVIEW = "plan_review";
const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, label, onClick) {
  const node = element("button", text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

/** The review form for one interrupt, shown inside the turn it stopped. */
class PlanReview {
  constructor(turn, event) {
    this.turn = turn;
    this.namespace = event.params.namespace || [];
    this.interruptId = event.params.data.interrupt_id;
    this.payload = event.params.data.payload;
    this.root = element("section", undefined, "plan-review");
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
  if (method === "input.requested" && data.payload?.kind === PLAN_REVIEW && page.turn) {
    new PlanReview(page.turn, event);
  } else if (method === "lifecycle" && !params.namespace?.length && data.event === "completed" && reviews.rejected) {
    const turn = reviews.rejected;
    reviews.rejected = null;
    showRejection(turn);
  }
});

// A run asks for review when the box is ticked (app.js reads it into the run context).
$("review-plan")?.addEventListener("change", (event) => {
  localStorage.setItem("alma-review-plan", event.target.checked ? "1" : "");
});
if ($("review-plan")) $("review-plan").checked = !!localStorage.getItem("alma-review-plan");
