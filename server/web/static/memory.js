// "What ALMA remembers": the facts ALMA keeps about the user across conversations,
// each with a delete button. They are the user's items under namespace ["memories"]
// of the store API; the key is the one the page keeps in this tab (app.js), sent the
// same way. The list is read again whenever an answer ends, since a message may have
// told ALMA something new.

const NAMESPACE = ["memories"];
const $ = (id) => document.getElementById(id);

function headers() {
  const key = sessionStorage.getItem("alma-key");
  const sent = { "content-type": "application/json" };
  if (key) sent.authorization = `Bearer ${key}`;
  return sent;
}

async function listMemories() {
  const response = await fetch("/store/items/search", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ namespace_prefix: NAMESPACE, limit: 100 }),
  });
  if (!response.ok) return null;
  const { items } = await response.json();
  // Newest first, as the graph recalls them.
  return items.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
}

async function forget(key) {
  const response = await fetch("/store/items", {
    method: "DELETE",
    headers: headers(),
    body: JSON.stringify({ namespace: NAMESPACE, key }),
  });
  if (response.ok) await refresh();
}

function row(item) {
  const li = document.createElement("li");
  const said = item.value.said || item.key;
  const text = document.createElement("span");
  // Text, never markup: the fact is the user's own words.
  text.textContent = said;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "forget";
  button.textContent = "Delete";
  button.setAttribute("aria-label", `Delete: ${said}`);
  button.addEventListener("click", () => forget(item.key));
  li.dataset.key = item.key;
  li.append(text, button);
  return li;
}

async function refresh() {
  let items;
  try {
    items = await listMemories();
  } catch {
    return; // the conversation's own banner reports an unreachable service
  }
  if (items === null) return;
  $("memory-list").replaceChildren(...items.map(row));
  $("memories-empty").hidden = items.length > 0;
}

function start() {
  if (!$("memory-list")) return;
  // An answer ended (the conversation is no longer busy): it may have told ALMA something.
  new MutationObserver(() => {
    if ($("messages").getAttribute("aria-busy") === "false") refresh();
  }).observe($("messages"), { attributes: true, attributeFilter: ["aria-busy"] });
  $("key-form").addEventListener("submit", () => setTimeout(refresh));
  refresh();
}

start();
