// One thread's event stream over WebSocket, in the LangChain agent streaming protocol:
// commands out, answers and events in. A lost connection is reopened with backoff and
// the subscription resumes after the last event seen (`since`), so every event arrives
// exactly once, however often the connection drops.

const CHANNELS = ["lifecycle", "messages", "updates", "custom", "tasks", "input"];
const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

export class CommandError extends Error {
  constructor(answer) {
    super(answer.message || answer.error);
    this.code = answer.error;
    this.retryAfter = answer.retry_after ?? null;
  }
}

export function streamUrl(threadId) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/threads/${encodeURIComponent(threadId)}/stream/events`;
}

export class ThreadStream {
  // onEvent(event): every event once, in order. onState(state, detail): "connecting",
  // "open", "reconnecting" (detail: {reason, delayMs}), "needs-key" (detail: reason).
  constructor({ threadId, key, onEvent, onState }) {
    this.threadId = threadId;
    this.key = key;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastSeq = null;
    this.nextId = 1;
    this.pending = new Map();
    this.socket = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
    this.opened = null;
  }

  open() {
    this.closed = false;
    this.onState("connecting");
    const protocols = ["alma"];
    // The key travels as a subprotocol: browsers cannot set headers on a WebSocket, and
    // a URL would put it in logs and history.
    if (this.key) protocols.push(`alma-key.${this.key}`);
    const socket = new WebSocket(streamUrl(this.threadId), protocols);
    this.socket = socket;
    let resolveOpened;
    this.opened = new Promise((resolve) => { resolveOpened = resolve; });
    socket.addEventListener("open", async () => {
      const params = { channels: CHANNELS };
      if (this.lastSeq !== null) params.since = this.lastSeq;
      try {
        await this._send("subscription.subscribe", params);
        this.attempt = 0;
        this.onState("open");
        resolveOpened();
      } catch (error) {
        socket.close(4000, "subscription refused");
      }
    });
    socket.addEventListener("message", (message) => this._receive(message.data));
    socket.addEventListener("close", (event) => this._closed(socket, event));
  }

  async _receive(data) {
    const text = typeof data === "string" ? data : await data.text();
    const message = JSON.parse(text);
    if (message.type === "event") {
      if (this.lastSeq !== null && message.seq <= this.lastSeq) return; // seen already
      this.lastSeq = message.seq;
      this.onEvent(message);
      return;
    }
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    if (message.type === "success") waiter.resolve(message.result);
    else waiter.reject(new CommandError(message));
  }

  _closed(socket, event) {
    if (socket !== this.socket) return;
    for (const waiter of this.pending.values()) {
      waiter.reject(new CommandError({ error: "connection_lost", message: "the connection was lost" }));
    }
    this.pending.clear();
    if (this.closed) return;
    if (event.code === 1008) {
      this.onState("needs-key", event.reason || "the server refused the connection");
      return;
    }
    const delayMs = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const reason = event.code === 1001 || event.code === 1012 ? "restarting"
      : event.code === 4008 ? "too-slow" : "lost";
    this.onState("reconnecting", { reason, delayMs });
    this.timer = setTimeout(() => this.open(), delayMs);
  }

  _send(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  // A command, once the connection is open (waiting through a reconnect if need be).
  async command(method, params = {}) {
    await this.opened;
    return this._send(method, params);
  }

  // Drop the connection as a network failure would (for tests and the "reconnect" key).
  drop() {
    if (this.socket) this.socket.close(4001, "dropped by the client");
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "bye");
  }
}
