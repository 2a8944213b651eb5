// The conversation page: a live view of one conversation over its websocket
// (docs/chat-protocol.md). The server renders the newest page of turns; this module takes them
// over, applies events in `seq` order, resyncs after a gap or a reconnect, keeps messages typed
// while offline or busy in an outbox (each with a client_id, so a resend is never stored twice),
// and keeps the view at the newest message unless the reader scrolled up.
import { renderText } from "./chat-text.js";
import { TranscriptView } from "./chat-view.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const SYNC_TIMEOUT_MS = 10000;
const GAP_RESYNC_DELAY_MS = 1000;
const PIN_SLACK_PX = 80;
const NOTICE_MS = 6000;
const MAX_BUSY_RETRIES = 3;
// A reply that sends nothing for this long is asked about (a lost frame or a half-open socket
// would otherwise leave it "typing…" for good); after Stop, sooner.
const STALL_SYNC_MS = 15000;
const STOP_SYNC_MS = 3000;
const FINISHED = { "reply.completed": "complete", "reply.stopped": "stopped", "reply.failed": "failed" };
const CLOSED_FOR_GOOD = {
  4401: "You are signed out. Reload the page to log in again.",
  4403: "This account cannot chat.",
  4404: "This conversation is not available.",
};

function newClientId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Plain-http pages off localhost are not a secure context and lack randomUUID.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Exponential backoff with jitter, so many tabs that lost the same server do not return at once.
function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

// A stored row of a reply being written lags its live text (the row is written when the reply
// ends): what the deltas already showed is kept when the stored text is only its beginning.
function liveText(shown, stored) {
  return stored.length < shown.length && shown.startsWith(stored) ? shown : stored;
}

class Chat {
  constructor(root, config, turns) {
    this.root = root;
    this.config = config;
    this.turns = new Map();
    this.lastSeq = config.last_seq;
    this.hasMore = config.has_more;
    this.oldestSeq = turns.length ? turns[0].seq : null;
    this.streamingId = null;
    this.ws = null;
    this.attempt = 0;
    this.closedForGood = false;
    this.syncing = false;
    this.lastSyncAt = 0;
    this.buffer = [];
    this.outbox = [];
    this.inFlight = null;
    this.lastAction = null;
    this.stopAsked = false;
    this.loadingOlder = false;
    this.timers = {};

    const $ = (id) => document.getElementById(id);
    this.scroller = $("transcript");
    this.conn = $("chat-conn");
    this.form = $("composer");
    this.input = $("composer-input");
    this.sendButton = $("send-button");
    this.stopButton = $("stop-button");
    this.notice = $("composer-notice");
    this.jump = $("jump-latest");
    this.older = $("older");
    this.view = new TranscriptView($("turns"), {
      userName: config.user_name,
      maxChars: config.max_chars,
      act: (frame) => this.act(frame),
      keepPinned: (draw) => this.keepPinned(draw),
      pending: {
        retry: (item) => {
          item.error = null;
          item.busyCount = 0;
          this.flushOutbox();
          this.refresh();
        },
        discard: (item) => this.discard(item),
      },
    });

    for (const turn of turns) {
      this.turns.set(turn.id, turn);
      if (turn.status === "streaming") this.streamingId = turn.id;
      // The server's rendering of the text stays until the text changes.
      this.view.render(turn, { keepBody: true });
    }
    this.refresh();
    this.bindUi();
    this.scrollToBottom();
    this.connect();
  }

  get busy() {
    return this.streamingId !== null;
  }

  get ready() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && !this.syncing);
  }

  // -- connection --

  connect() {
    if (this.closedForGood) return;
    clearTimeout(this.timers.reconnect);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.config.ws_path}`);
    this.ws = ws;
    this.setConn("connecting", this.attempt ? "Reconnecting…" : "Connecting…");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.syncing = false;
      this.buffer = [];
      this.inFlight = null;
      this.requestSync();
    });
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg && typeof msg === "object") this.onFrame(msg);
    });
    ws.addEventListener("close", (e) => {
      if (ws === this.ws) this.onClose(e);
    });
  }

  onClose(event) {
    this.ws = null;
    this.syncing = false;
    clearTimeout(this.timers.sync);
    const final = CLOSED_FOR_GOOD[event.code];
    if (final) {
      this.closedForGood = true;
      this.setConn("closed", final);
      this.returnUnsent();
    } else {
      const delay = backoffDelay(this.attempt++);
      this.setConn("offline", `Offline — reconnecting in ${Math.ceil(delay / 1000)} s`);
      this.timers.reconnect = setTimeout(() => this.connect(), delay);
    }
    this.refresh();
  }

  // Closed for good (signed out, conversation gone): what was not sent goes back into the
  // composer, where it can still be copied before the page is left.
  returnUnsent() {
    const texts = this.outbox.map((m) => m.text);
    for (const item of this.outbox) this.view.removePending(item);
    this.outbox = [];
    this.inFlight = null;
    if (texts.length) this.input.value = [this.input.value, ...texts].filter(Boolean).join("\n\n");
    this.autosize();
  }

  reconnectNow() {
    if (this.ws || this.closedForGood) return;
    this.attempt = 0;
    this.connect();
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  setConn(state, text) {
    this.conn.dataset.state = state;
    this.conn.textContent = text;
    this.root.dataset.conn = state;
  }

  requestSync() {
    if (this.syncing) return;
    if (!this.send({ type: "sync", after_seq: this.lastSeq })) return;
    this.syncing = true;
    this.lastSyncAt = Date.now();
    clearTimeout(this.timers.sync);
    // A sync that never answers means a dead socket: start over.
    this.timers.sync = setTimeout(() => this.ws && this.ws.close(), SYNC_TIMEOUT_MS);
  }

  // -- incoming frames --

  onFrame(msg) {
    if (msg.type === "error") this.onError(msg);
    else if (msg.type === "sync.state") this.onSyncState(msg);
    else if (typeof msg.seq !== "number") return;
    else if (this.syncing) this.buffer.push(msg);
    else this.applyEvent(msg);
    this.watchStream(STALL_SYNC_MS);
  }

  watchStream(ms) {
    clearTimeout(this.timers.stall);
    if (!this.busy) {
      this.stopAsked = false;
      return;
    }
    // After Stop, the words already on their way must not put the check off for long.
    const wait = this.stopAsked ? Math.min(ms, STOP_SYNC_MS) : ms;
    this.timers.stall = setTimeout(() => this.requestSync(), wait);
  }

  applyEvent(msg) {
    if (msg.seq <= this.lastSeq) return;
    if (msg.seq > this.lastSeq + 1) {
      this.buffer.push(msg);
      // At most one gap-driven sync a second: a server that skips numbers never makes a loop.
      const wait = Math.max(0, this.lastSyncAt + GAP_RESYNC_DELAY_MS - Date.now());
      clearTimeout(this.timers.gap);
      this.timers.gap = setTimeout(() => this.requestSync(), wait);
      return;
    }
    this.lastSeq = msg.seq;
    this.dispatch(msg);
  }

  onSyncState(msg) {
    clearTimeout(this.timers.sync);
    this.syncing = false;
    if (msg.complete === false) {
      // Too much changed to patch in place: start again from the newest page.
      this.reloadNewest(msg);
      return;
    }
    this.keepPinned(() => {
      for (const turn of msg.turns || []) this.upsert(turn);
      const live = msg.streaming;
      const turn = live && this.turns.get(live.turn_id);
      if (turn) {
        const shown = turn.status === "streaming" ? turn.content || "" : "";
        const content = liveText(shown, live.content || "");
        Object.assign(turn, { status: "streaming", content, name: live.name || turn.name });
        this.streamingId = turn.id;
        this.view.render(turn);
      } else if (!live) {
        this.streamingId = null;
      }
      if (typeof msg.seq === "number" && msg.seq > this.lastSeq) this.lastSeq = msg.seq;
      const pending = this.buffer.sort((a, b) => a.seq - b.seq);
      this.buffer = [];
      for (const event of pending) this.applyEvent(event);
    });
    this.attempt = 0;
    this.setConn("online", "Connected");
    this.refresh();
    this.flushOutbox();
  }

  async reloadNewest(state) {
    this.syncing = true;
    try {
      const page = await this.fetchTurns(`limit=${this.config.page_size}`);
      for (const id of [...this.turns.keys()]) this.remove(id);
      this.hasMore = Boolean(page.has_more);
      this.oldestSeq = null;
      this.syncing = false;
      this.onSyncState({ ...state, complete: true, turns: page.turns || [] });
      this.scrollToBottom();
    } catch {
      this.syncing = false;
      if (this.ws) this.ws.close();
    }
  }

  dispatch(msg) {
    const turn = this.turns.get(msg.turn_id);
    if (msg.type.startsWith("reply.") && !turn) {
      // An event about a turn this page never saw: the sync brings it whole.
      this.requestSync();
      return;
    }
    this.keepPinned(() => {
      if (msg.type === "turn.created" || msg.type === "turn.updated") {
        this.upsert(msg.turn);
      } else if (msg.type === "turns.hidden") {
        for (const id of msg.turn_ids || []) this.remove(id);
      } else if (msg.type === "reply.started") {
        Object.assign(turn, { status: "streaming", name: msg.name || turn.name, error: null });
        this.streamingId = turn.id;
        this.view.render(turn, { keepBody: true });
      } else if (msg.type === "reply.delta") {
        turn.content = (turn.content || "") + (msg.text || "");
        turn.status = "streaming";
        this.streamingId = turn.id;
        this.view.renderStreaming(turn);
        return;
      } else if (FINISHED[msg.type]) {
        this.finish(turn, msg);
      } else {
        return;
      }
      this.refresh();
    });
  }

  finish(turn, msg) {
    turn.status = FINISHED[msg.type];
    if (typeof msg.content === "string") turn.content = msg.content;
    if (msg.finish_reason) turn.finish_reason = msg.finish_reason;
    turn.error = msg.error ? { code: msg.error.code, message: msg.error.message } : null;
    if (this.streamingId === turn.id) this.streamingId = null;
    this.view.render(turn);
    this.flushOutbox();
  }

  onError(msg) {
    const action = this.lastAction;
    this.lastAction = null;
    // A frame that failed on the server may have changed something: the sync tells.
    const resync = ["busy", "not_found", "server_error"].includes(msg.code);
    if (action && action.type === "turn.edit" && this.view.editorRefused(msg.message || "The edit was not saved.")) {
      if (resync) this.requestSync();
      return;
    }
    if (action && action.type === "message.send" && this.inFlight === action.clientId) {
      // Frames are answered in order and only one message is in flight: this error is its.
      if (msg.code === "duplicate") {
        // Stored before (its turn may be hidden since): delivered, and the sync shows where.
        this.delivered(action.clientId);
        this.requestSync();
        return;
      }
      this.inFlight = null;
      const item = this.outbox.find((m) => m.clientId === action.clientId);
      if (!item) return;
      if (msg.code === "busy" && (item.busyCount = (item.busyCount || 0) + 1) <= MAX_BUSY_RETRIES) {
        // Our idea of "idle" was stale: the sync brings the running reply, its end flushes.
        this.requestSync();
        return;
      }
      item.error = msg.message || "The message could not be sent.";
      this.refresh();
      if (msg.code === "server_error") this.requestSync();  // stored after all, the sync says
      return;
    }
    this.showNotice(msg.message || "That did not work.");
    if (resync) this.requestSync();
  }

  // -- state --

  upsert(turn) {
    if (!turn || typeof turn.id !== "number") return;
    if (turn.active === false) {
      // Hidden since it was stored, but stored: a message waiting for it is delivered.
      if (turn.client_id) this.delivered(turn.client_id);
      return this.remove(turn.id);
    }
    const known = this.turns.get(turn.id);
    // Older than the loaded window: it shows up when the reader scrolls there.
    if (!known && this.hasMore && this.oldestSeq !== null && turn.seq < this.oldestSeq) return;
    if (known && this.streamingId === turn.id && turn.status === "streaming") {
      turn = { ...turn, content: liveText(known.content || "", turn.content || "") };
    }
    this.turns.set(turn.id, turn);
    if (turn.status === "streaming") this.streamingId = turn.id;
    else if (this.streamingId === turn.id) this.streamingId = null;
    if (this.oldestSeq === null || turn.seq < this.oldestSeq) this.oldestSeq = turn.seq;
    if (turn.client_id) this.delivered(turn.client_id);
    this.view.render(turn, { keepBody: Boolean(known) && known.content === turn.content });
  }

  remove(id) {
    this.turns.delete(id);
    if (this.streamingId === id) this.streamingId = null;
    this.view.remove(id);
  }

  // Redraw what depends on the whole state: actions, the composer, pending bubbles.
  refresh() {
    const ordered = [...this.turns.values()].sort((a, b) => a.seq - b.seq);
    // While a message is on its way, an action's error could not be told from the message's.
    this.view.refreshActions(ordered, this.busy || !this.ready || this.inFlight !== null);
    for (const item of this.outbox) this.view.pending(item, this.pendingState(item));
    this.stopButton.hidden = !this.busy;
    this.sendButton.textContent = this.busy ? "Queue" : "Send";
    this.input.readOnly = this.closedForGood;
    this.sendButton.disabled = this.closedForGood;
    this.root.classList.toggle("is-busy", this.busy);
    this.older.hidden = !this.hasMore;
  }

  act(frame) {
    if (!this.ready) {
      this.showNotice("Not connected yet — try again in a moment.");
      return false;
    }
    if (this.inFlight !== null) {
      this.showNotice("Your message is on its way — try again in a moment.");
      return false;
    }
    this.lastAction = { type: frame.type };
    return this.send(frame);
  }

  // -- the composer and the outbox --

  bindUi() {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      } else if (e.key === "Escape" && this.busy) {
        this.stop();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.stopButton.addEventListener("click", () => this.stop());
    this.jump.addEventListener("click", () => this.scrollToBottom());
    this.scroller.addEventListener("scroll", () => {
      if (this.isPinned()) this.jump.hidden = true;
    }, { passive: true });
    const olderButton = document.getElementById("load-older");
    if (olderButton) olderButton.addEventListener("click", () => this.loadOlder());
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) this.loadOlder();
      }, { root: this.scroller, rootMargin: "300px 0px 0px 0px" }).observe(this.older);
    }
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  autosize() {
    this.input.rows = Math.min(8, Math.max(1, this.input.value.split("\n").length));
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || this.closedForGood) return;
    if (text.length > this.config.max_chars) {
      this.showNotice(`That message is too long (at most ${this.config.max_chars} characters).`);
      return;
    }
    const item = { clientId: newClientId(), text, error: null, busyCount: 0 };
    this.outbox.push(item);
    this.input.value = "";
    this.autosize();
    this.keepPinned(() => this.view.pending(item, this.pendingState(item)), true);
    this.flushOutbox();
  }

  stop() {
    if (this.busy && this.act({ type: "reply.stop" })) {
      this.stopAsked = true;
      this.watchStream(STOP_SYNC_MS);
    }
  }

  flushOutbox() {
    if (!this.ready || this.busy || this.inFlight) return;
    const item = this.outbox.find((m) => !m.error);
    if (!item) return;
    this.inFlight = item.clientId;
    this.lastAction = { type: "message.send", clientId: item.clientId };
    this.send({ type: "message.send", client_id: item.clientId, text: item.text });
    this.view.pending(item, this.pendingState(item));
  }

  pendingState(item) {
    if (item.error) return "not sent";
    if (this.inFlight === item.clientId) return "sending…";
    return this.ready ? "queued" : "waiting for connection";
  }

  delivered(clientId) {
    const item = this.outbox.find((m) => m.clientId === clientId);
    if (!item) return;
    this.outbox = this.outbox.filter((m) => m !== item);
    if (this.inFlight === clientId) this.inFlight = null;
    this.view.removePending(item);
  }

  discard(item) {
    this.outbox = this.outbox.filter((m) => m !== item);
    this.view.removePending(item);
    if (!this.input.value) this.input.value = item.text;
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
    clearTimeout(this.timers.notice);
    this.timers.notice = setTimeout(() => { this.notice.hidden = true; }, NOTICE_MS);
  }

  // -- scrolling --

  isPinned() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < PIN_SLACK_PX;
  }

  // Never smooth: a reply growing under a smooth scroll would leave the view short of the end.
  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.jump.hidden = true;
  }

  keepPinned(change, force) {
    const pinned = force || this.isPinned();
    change();
    if (pinned) this.scrollToBottom();
    else if (!this.isPinned()) this.jump.hidden = false;
  }

  async fetchTurns(query) {
    const response = await fetch(`${this.config.turns_url}?${query}`, {
      credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`turns: HTTP ${response.status}`);
    return response.json();
  }

  async loadOlder() {
    if (this.loadingOlder || !this.hasMore || this.oldestSeq === null) return;
    this.loadingOlder = true;
    this.older.dataset.state = "loading";
    try {
      const page = await this.fetchTurns(`before_seq=${this.oldestSeq}&limit=${this.config.page_size}`);
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      const older = (page.turns || []).filter((t) => t.active !== false && t.seq < this.oldestSeq);
      for (const turn of older) {
        if (this.turns.has(turn.id)) continue;
        this.turns.set(turn.id, turn);
        this.view.render(turn);
      }
      if (older.length) this.oldestSeq = Math.min(this.oldestSeq, ...older.map((t) => t.seq));
      this.hasMore = Boolean(page.has_more) && older.length > 0;
      this.refresh();
      // Keep the message the reader was looking at where it was.
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
      this.older.dataset.state = "";
    } catch {
      this.older.dataset.state = "error";
      this.showNotice("Could not load earlier messages.");
    } finally {
      this.loadingOlder = false;
    }
  }
}

// One handle for the console and the browser tests.
window.companion = { renderText, chat: null };

const root = document.getElementById("chat");
const config = document.getElementById("chat-config");
const turns = document.getElementById("chat-turns");
if (root && config && turns) {
  root.classList.add("has-js");
  window.companion.chat = new Chat(root, JSON.parse(config.textContent), JSON.parse(turns.textContent));
}
