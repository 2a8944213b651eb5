// The conversation page: a live view of the conversation over its websocket
// (docs/chat-protocol.md). The server renders the newest page of turns; this script takes them
// over, applies events in `seq` order, resyncs after any gap or reconnect, and never puts
// untrusted text into HTML: every piece of text becomes a text node.
"use strict";

(() => {
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const SYNC_TIMEOUT_MS = 10000;
  const GAP_RESYNC_DELAY_MS = 1000;
  const PIN_SLACK_PX = 80;
  const NOTICE_MS = 6000;

  // ---- DOM helpers ------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  function button(label, onclick, className, extra) {
    return el("button", { type: "button", className: className || "act", onclick, ...extra }, label);
  }

  // ---- Text: the same Markdown subset the server renders (conversations/rendering.py) -------
  // Text only ever reaches the page through text nodes, so markup in a reply, a card or a
  // message shows as the characters it is made of.

  const FENCE = /^ {0,3}(`{3,}|~{3,})/;
  const INDENTED = /^(?: {4}|\t)/;
  const QUOTE = /^ {0,3}> ?/;
  const BULLET = /^ {0,3}([-+*])[ \t]+(.*)$/;
  const ORDERED = /^ {0,3}(\d{1,9})[.)][ \t]+(.*)$/;
  const MAX_DEPTH = 6;

  function renderText(source) {
    const fragment = document.createDocumentFragment();
    renderBlocks(fragment, String(source || "").replace(/\r\n?/g, "\n").split("\n"), 0);
    return fragment;
  }

  function renderBlocks(parent, lines, depth) {
    let paragraph = [];
    const flush = () => {
      if (paragraph.length) parent.append(renderInline(el("p"), paragraph.join("\n")));
      paragraph = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if (!line.trim()) {
        flush();
      } else if ((m = line.match(FENCE))) {
        flush();
        const body = [];
        while (i + 1 < lines.length && !lines[i + 1].trim().startsWith(m[1])) body.push(lines[++i]);
        i++;
        parent.append(el("pre", {}, el("code", { text: body.length ? body.join("\n") + "\n" : "" })));
      } else if (depth < MAX_DEPTH && QUOTE.test(line)) {
        flush();
        const inner = [];
        while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(QUOTE, ""));
        i--;
        const quote = el("blockquote");
        renderBlocks(quote, inner, depth + 1);
        parent.append(quote);
      } else if (!paragraph.length && INDENTED.test(line)) {
        const body = [];
        while (i < lines.length && (INDENTED.test(lines[i]) || !lines[i].trim())) {
          body.push(lines[i++].replace(INDENTED, ""));
        }
        i--;
        while (body.length && !body[body.length - 1].trim()) body.pop();
        parent.append(el("pre", {}, el("code", { text: body.join("\n") + "\n" })));
      } else if ((m = line.match(BULLET) || line.match(ORDERED))) {
        flush();
        i = renderList(parent, lines, i, depth) - 1;
      } else {
        paragraph.push(line.trim());
      }
    }
    flush();
  }

  function renderList(parent, lines, start, depth) {
    const ordered = !lines[start].match(BULLET);
    const pattern = ordered ? ORDERED : BULLET;
    const first = lines[start].match(pattern);
    const list = el(ordered ? "ol" : "ul");
    if (ordered && first[1] !== "1") list.setAttribute("start", String(Number(first[1])));
    let i = start;
    while (i < lines.length) {
      const m = lines[i].match(pattern);
      if (!m) break;
      const item = [m[2]];
      i++;
      while (i < lines.length && lines[i].trim() && !BULLET.test(lines[i]) && !ORDERED.test(lines[i])) {
        item.push(lines[i++].trim());
      }
      list.append(renderInline(el("li"), item.join("\n")));
      if (i < lines.length && !lines[i].trim()) break;
    }
    parent.append(list);
    return i;
  }

  // Earliest match wins; ties go to the rule listed first (*** before ** before *).
  const INLINE = [
    { re: /\\([!-/:-@[-`{-~])/, make: (m) => document.createTextNode(m[1]) },
    { re: /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, make: (m) => el("code", { text: m[2] }) },
    { re: /\*\*\*(?=[^\s*])([\s\S]*?[^\s*])\*\*\*/, make: (m) => el("em", {}, renderInline(el("strong"), m[1])) },
    { re: /\*\*(?=\S)([\s\S]*?\S)\*\*/, tag: "strong" },
    { re: /(?<![\p{L}\p{N}_])__(?=\S)([\s\S]*?\S)__(?![\p{L}\p{N}_])/u, tag: "strong" },
    { re: /\*(?=[^\s*])([\s\S]*?[^\s*]|[^\s*])\*/, tag: "em" },
    { re: /(?<![\p{L}\p{N}_])_(?=\S)([\s\S]*?\S)_(?![\p{L}\p{N}_])/u, tag: "em" },
    // Strikethrough parses, but the server's sanitiser drops <s> and keeps its text.
    { re: /~~(?=\S)([\s\S]*?\S)~~/, make: (m) => renderInline(document.createDocumentFragment(), m[1]) },
    { re: /<((?:https?|mailto):[^\s<>]*)>/i, make: (m) => link(m[1], m[1], m[0]) },
    { re: /\[([^\]]*)\]\(\s*<?([^\s)>]*)>?(?:\s+"[^"]*")?\s*\)/, make: (m) => link(m[2], m[1], m[0]) },
  ];

  // Only web and mail links keep their address, as the server's sanitiser allows; a script or
  // file address is not a link at all (markdown-it leaves such text as it was written).
  function link(href, label, source) {
    if (/^(javascript|vbscript|file|data):/i.test(href) && !/^data:image\/(gif|png|jpeg|webp);/i.test(href)) {
      return document.createTextNode(source);
    }
    const safe = /^(https?:|mailto:)/i.test(href);
    const a = el("a", safe ? { href, rel: "noopener nofollow ugc" } : {});
    return renderInline(a, label);
  }

  function renderInline(parent, text) {
    let rest = text;
    while (rest) {
      let best = null;
      for (const rule of INLINE) {
        const m = rule.re.exec(rest);
        if (m && (!best || m.index < best.m.index)) best = { rule, m };
      }
      if (!best) {
        parent.append(document.createTextNode(rest));
        break;
      }
      const { rule, m } = best;
      if (m.index) parent.append(document.createTextNode(rest.slice(0, m.index)));
      parent.append(rule.make ? rule.make(m) : renderInline(el(rule.tag), m[1]));
      rest = rest.slice(m.index + m[0].length);
    }
    return parent;
  }

  // ---- Small utilities ----------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // Plain-http pages off localhost are not a secure context and lack randomUUID.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function backoffDelay(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  const FILTERED_HINT =
    "The model provider's safety filter blocked this reply. Rephrase your last message, or try again.";

  // ---- The chat ---------------------------------------------------------------------------

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
      this.buffer = [];
      this.outbox = [];
      this.inFlight = null;
      this.lastAction = null;
      this.loadingOlder = false;
      this.lastSyncAt = 0;
      this.timers = {};

      const $ = (id) => document.getElementById(id);
      this.list = $("turns");
      this.scroller = $("transcript");
      this.conn = $("chat-conn");
      this.form = $("composer");
      this.input = $("composer-input");
      this.sendButton = $("send-button");
      this.stopButton = $("stop-button");
      this.notice = $("composer-notice");
      this.jump = $("jump-latest");
      this.older = $("older");

      for (const turn of turns) this.adopt(turn);
      this.refreshChrome();
      this.bindUi();
      this.scrollToBottom();
      this.connect();
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
      const final = { 4401: "You are signed out. Reload the page to log in again.",
        4403: "This account cannot chat.",
        4404: "This conversation is not available." }[event.code];
      if (final) {
        this.closedForGood = true;
        this.setConn("closed", final);
        this.refreshChrome();
        return;
      }
      const delay = backoffDelay(this.attempt++);
      this.setConn("offline", `Offline — reconnecting in ${Math.ceil(delay / 1000)} s`);
      this.timers.reconnect = setTimeout(() => this.connect(), delay);
      this.refreshChrome();
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
      if (msg.type === "error") return this.onError(msg);
      if (msg.type === "sync.state") return this.onSyncState(msg);
      if (typeof msg.seq !== "number") return;
      if (this.syncing) {
        this.buffer.push(msg);
        return;
      }
      this.applyEvent(msg);
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
        const s = msg.streaming;
        if (s && this.turns.has(s.turn_id)) {
          const turn = this.turns.get(s.turn_id);
          Object.assign(turn, { status: "streaming", content: s.content || "", name: s.name || turn.name });
          this.streamingId = s.turn_id;
          this.renderTurn(turn);
        } else {
          this.streamingId = this.findStreaming();
        }
        if (typeof msg.seq === "number" && msg.seq > this.lastSeq) this.lastSeq = msg.seq;
        const pending = this.buffer.sort((a, b) => a.seq - b.seq);
        this.buffer = [];
        for (const event of pending) this.applyEvent(event);
      });
      this.attempt = 0;
      this.setConn("online", "Connected");
      this.refreshChrome();
      this.flushOutbox();
    }

    async reloadNewest(state) {
      this.syncing = true;
      try {
        const response = await fetch(`${this.config.turns_url}?limit=${this.config.page_size}`, {
          credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(String(response.status));
        const page = await response.json();
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
      this.keepPinned(() => {
        const turn = this.turns.get(msg.turn_id);
        switch (msg.type) {
          case "turn.created":
          case "turn.updated":
            this.upsert(msg.turn);
            break;
          case "turns.hidden":
            for (const id of msg.turn_ids || []) this.remove(id);
            break;
          case "reply.started":
            if (!turn) return this.requestSync();
            Object.assign(turn, { status: "streaming", name: msg.name || turn.name, error: null });
            this.streamingId = turn.id;
            this.renderTurn(turn);
            break;
          case "reply.delta":
            if (!turn) return this.requestSync();
            turn.content = (turn.content || "") + (msg.text || "");
            turn.status = "streaming";
            this.streamingId = turn.id;
            this.renderBody(turn);
            return;
          case "reply.completed":
          case "reply.stopped":
          case "reply.failed":
            if (!turn) return this.requestSync();
            this.finish(turn, msg);
            break;
          default:
            return;
        }
        this.refreshChrome();
      });
    }

    finish(turn, msg) {
      const status = { "reply.completed": "complete", "reply.stopped": "stopped", "reply.failed": "failed" }[msg.type];
      turn.status = status;
      if (typeof msg.content === "string") turn.content = msg.content;
      if (msg.finish_reason) turn.finish_reason = msg.finish_reason;
      turn.error = msg.error ? { code: msg.error.code, message: msg.error.message } : null;
      if (this.streamingId === turn.id) this.streamingId = null;
      this.renderTurn(turn);
      this.flushOutbox();
    }

    onError(msg) {
      const action = this.lastAction;
      this.lastAction = null;
      if (action && action.type === "message.send" && this.inFlight === action.clientId) {
        this.inFlight = null;
        const item = this.outbox.find((m) => m.clientId === action.clientId);
        if (msg.code === "busy" && item && (item.busyCount = (item.busyCount || 0) + 1) <= 3) {
          // Our idea of "idle" was stale: the sync brings the running reply, its end flushes.
          this.requestSync();
          return;
        }
        if (item) {
          item.error = msg.message || "The message could not be sent.";
          this.renderPending(item);
        }
        return;
      }
      this.showNotice(msg.message || "That did not work.");
      if (msg.code === "busy" || msg.code === "not_found") this.requestSync();
    }

    // -- state --

    findStreaming() {
      for (const turn of this.turns.values()) if (turn.status === "streaming") return turn.id;
      return null;
    }

    adopt(turn) {
      const node = document.getElementById(`turn-${turn.id}`);
      const body = node && node.querySelector(".turn-body");
      this.turns.set(turn.id, turn);
      if (turn.status === "streaming") this.streamingId = turn.id;
      // The server's rendering of the text stays until the text changes.
      this.renderTurn(turn, { node, keepBody: Boolean(body) });
    }

    upsert(turn) {
      if (!turn || typeof turn.id !== "number") return;
      if (turn.active === false) return this.remove(turn.id);
      const known = this.turns.get(turn.id);
      // Older than the loaded window: it shows up when the user scrolls there.
      if (!known && this.hasMore && this.oldestSeq !== null && turn.seq < this.oldestSeq) return;
      if (known && this.streamingId === turn.id && turn.status === "streaming" &&
          (turn.content || "").length < (known.content || "").length) {
        // The stored row lags the live text; keep what the deltas already showed.
        turn = { ...turn, content: known.content };
      }
      this.turns.set(turn.id, turn);
      if (turn.status === "streaming") this.streamingId = turn.id;
      else if (this.streamingId === turn.id) this.streamingId = null;
      if (this.oldestSeq === null || turn.seq < this.oldestSeq) this.oldestSeq = turn.seq;
      if (turn.client_id) this.delivered(turn.client_id);
      this.renderTurn(turn, { keepBody: known && known.content === turn.content });
    }

    remove(id) {
      this.turns.delete(id);
      if (this.streamingId === id) this.streamingId = null;
      const node = document.getElementById(`turn-${id}`);
      if (node) node.remove();
    }

    orderedTurns() {
      return [...this.turns.values()].sort((a, b) => a.seq - b.seq);
    }

    get busy() {
      return this.streamingId !== null;
    }

    get ready() {
      return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && !this.syncing);
    }

    // -- rendering turns --

    renderTurn(turn, opts = {}) {
      let node = opts.node || document.getElementById(`turn-${turn.id}`);
      const fresh = !node;
      if (fresh) {
        node = el("li", { id: `turn-${turn.id}` },
          el("div", { className: "turn-meta" }),
          el("div", { className: "turn-body" }),
          el("div", { className: "turn-notice" }),
          el("div", { className: "turn-actions" }));
        this.place(node, turn.seq);
      }
      node.className = `turn turn-${turn.role} is-${turn.status}`;
      node.dataset.turnId = turn.id;
      node.dataset.seq = turn.seq;
      node.dataset.status = turn.status;
      this.renderMeta(node, turn);
      if (!opts.keepBody || fresh) this.renderBody(turn, node);
      this.renderNotice(node, turn);
      node.dataset.sig = "";
    }

    place(node, seq) {
      for (const other of this.list.children) {
        const otherSeq = Number(other.dataset.seq);
        if (other.classList.contains("is-pending") || otherSeq > seq) {
          this.list.insertBefore(node, other);
          return;
        }
      }
      this.list.append(node);
    }

    renderMeta(node, turn) {
      const meta = node.querySelector(".turn-meta") || node.insertBefore(el("div", { className: "turn-meta" }), node.firstChild);
      const badges = [];
      if (turn.status === "streaming") badges.push(el("span", { className: "badge typing", text: "typing…" }));
      if (turn.status === "stopped") badges.push(el("span", { className: "badge", text: "stopped" }));
      if (turn.status === "failed") badges.push(el("span", { className: "badge danger", text: "failed" }));
      if (turn.finish_reason === "length" && turn.status !== "streaming") {
        badges.push(el("span", { className: "badge", text: "cut off" }));
      }
      meta.replaceChildren(el("span", { className: "turn-name", text: turn.name }), ...badges);
    }

    renderBody(turn, node) {
      node = node || document.getElementById(`turn-${turn.id}`);
      if (!node || node.dataset.editing) return;
      const body = node.querySelector(".turn-body");
      body.replaceChildren(renderText(turn.content));
      if (turn.status === "streaming" && !turn.content) {
        body.append(el("span", { className: "typing-dots", "aria-label": `${turn.name} is typing` },
          el("span"), el("span"), el("span")));
      }
    }

    renderNotice(node, turn) {
      const notice = node.querySelector(".turn-notice");
      const parts = [];
      if (turn.status === "failed" && turn.error) {
        parts.push(el("p", { className: "turn-error", role: "alert", text: turn.error.message }));
        if (turn.error.code === "content_filtered") {
          parts.push(el("p", { className: "turn-hint", text: FILTERED_HINT }));
        }
      }
      notice.replaceChildren(...parts);
    }

    // Actions depend on a turn's place in the transcript, so they are redrawn after changes.
    refreshChrome() {
      const ordered = this.orderedTurns();
      const last = ordered[ordered.length - 1];
      const locked = this.busy || !this.ready;
      for (const turn of ordered) {
        const node = document.getElementById(`turn-${turn.id}`);
        if (!node || node.dataset.editing) continue;
        const isLast = turn === last;
        const sig = [turn.status, turn.candidate_index, turn.candidate_count, turn.finish_reason,
          turn.error && turn.error.code, isLast, locked, node.dataset.confirming || ""].join("|");
        if (node.dataset.sig === sig) continue;
        node.dataset.sig = sig;
        node.querySelector(".turn-actions").replaceChildren(...this.actionsFor(turn, isLast, locked, node));
      }
      this.stopButton.hidden = !this.busy;
      for (const item of this.outbox) this.renderPending(item);
      this.input.disabled = this.closedForGood;
      this.sendButton.disabled = this.closedForGood;
      this.root.classList.toggle("is-busy", this.busy);
      this.sendButton.textContent = this.busy ? "Queue" : "Send";
      this.older.hidden = !this.hasMore;
    }

    actionsFor(turn, isLast, locked, node) {
      if (turn.status === "streaming") return [];
      if (node.dataset.confirming) {
        return [el("span", { className: "confirm", text: "Delete this message?" }),
          button("Delete", () => this.act({ type: "turn.delete", turn_id: turn.id }), "act danger"),
          button("Keep", () => { delete node.dataset.confirming; this.refreshChrome(); })];
      }
      const dis = locked ? { disabled: true } : {};
      const acts = [];
      if (turn.role === "assistant" && turn.candidate_count > 1) {
        const i = turn.candidate_index;
        const n = turn.candidate_count;
        acts.push(el("span", { className: "swipes" },
          button("◀", () => this.act({ type: "reply.select", turn_id: turn.id, index: i - 1 }), "act swipe",
            { "aria-label": "Previous candidate", disabled: locked || i <= 1 }),
          el("span", { className: "swipe-pos", text: `${i}/${n}` }),
          button("▶", () => this.act({ type: "reply.select", turn_id: turn.id, index: i + 1 }), "act swipe",
            { "aria-label": "Next candidate", disabled: locked || i >= n })));
      }
      if (turn.role === "assistant" && turn.status === "failed") {
        acts.push(button("Retry", () => this.act({ type: "reply.regenerate", turn_id: turn.id }), "act primary", dis));
      } else if (turn.role === "assistant" && isLast) {
        if (turn.finish_reason === "length") {
          acts.push(button("Continue", () => this.act({ type: "reply.continue" }), "act primary", dis));
        }
        acts.push(button("Regenerate", () => this.act({ type: "reply.regenerate", turn_id: turn.id }), "act", dis));
        if (turn.finish_reason !== "length") {
          acts.push(button("Continue", () => this.act({ type: "reply.continue" }), "act", dis));
        }
      }
      acts.push(button("Edit", () => this.openEditor(turn), "act", dis));
      acts.push(button("Delete", () => { node.dataset.confirming = "1"; this.refreshChrome(); }, "act", dis));
      return acts;
    }

    act(frame) {
      if (!this.ready) {
        this.showNotice("Not connected yet — try again in a moment.");
        return;
      }
      this.lastAction = { type: frame.type };
      this.send(frame);
    }

    openEditor(turn) {
      const node = document.getElementById(`turn-${turn.id}`);
      if (!node) return;
      node.dataset.editing = "1";
      const area = el("textarea", { className: "edit-input", rows: 4, maxlength: this.config.max_chars,
        "aria-label": "Edit message" });
      area.value = turn.content;
      const close = () => {
        delete node.dataset.editing;
        node.dataset.sig = "";
        this.renderBody(this.turns.get(turn.id) || turn, node);
        this.refreshChrome();
      };
      const save = () => {
        const text = area.value.trim();
        if (!text) return;
        if (!this.ready) return this.showNotice("Not connected yet — your edit is still here.");
        this.lastAction = { type: "turn.edit" };
        this.send({ type: "turn.edit", turn_id: turn.id, text });
        close();
      };
      area.addEventListener("keydown", (e) => {
        if (e.key === "Escape") close();
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
      });
      const label = turn.role === "user" ? "Save and send" : "Save";
      node.querySelector(".turn-body").replaceChildren(area);
      node.querySelector(".turn-actions").replaceChildren(
        button(label, save, "act primary"), button("Cancel", close));
      area.focus();
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
      if (!text) return;
      if (text.length > this.config.max_chars) {
        this.showNotice(`That message is too long (at most ${this.config.max_chars} characters).`);
        return;
      }
      const item = { clientId: newClientId(), text, error: null };
      this.outbox.push(item);
      this.input.value = "";
      this.autosize();
      this.keepPinned(() => this.renderPending(item), true);
      this.flushOutbox();
    }

    stop() {
      if (this.busy) this.act({ type: "reply.stop" });
    }

    flushOutbox() {
      if (!this.ready || this.busy || this.inFlight) return;
      const item = this.outbox.find((m) => !m.error);
      if (!item) return;
      this.inFlight = item.clientId;
      this.lastAction = { type: "message.send", clientId: item.clientId };
      this.send({ type: "message.send", client_id: item.clientId, text: item.text });
      this.renderPending(item);
    }

    delivered(clientId) {
      const index = this.outbox.findIndex((m) => m.clientId === clientId);
      if (index < 0) return;
      this.outbox.splice(index, 1);
      if (this.inFlight === clientId) this.inFlight = null;
      const node = document.getElementById(`pending-${clientId}`);
      if (node) node.remove();
    }

    renderPending(item) {
      let node = document.getElementById(`pending-${item.clientId}`);
      if (!node) {
        node = el("li", { id: `pending-${item.clientId}`, className: "turn turn-user is-pending" },
          el("div", { className: "turn-meta" }), el("div", { className: "turn-body" }),
          el("div", { className: "turn-notice" }), el("div", { className: "turn-actions" }));
        node.querySelector(".turn-body").append(renderText(item.text));
        this.list.append(node);
      }
      const state = item.error ? "not sent"
        : this.inFlight === item.clientId ? "sending…"
          : this.ready ? "queued" : "waiting for connection";
      node.querySelector(".turn-meta").replaceChildren(
        el("span", { className: "turn-name", text: this.config.user_name }),
        el("span", { className: item.error ? "badge danger" : "badge", text: state }));
      node.querySelector(".turn-notice").replaceChildren(
        ...(item.error ? [el("p", { className: "turn-error", role: "alert", text: item.error })] : []));
      node.querySelector(".turn-actions").replaceChildren(...(item.error ? [
        button("Retry", () => { item.error = null; this.renderPending(item); this.flushOutbox(); }, "act primary"),
        button("Discard", () => this.discard(item)),
      ] : []));
    }

    discard(item) {
      this.outbox = this.outbox.filter((m) => m !== item);
      const node = document.getElementById(`pending-${item.clientId}`);
      if (node) node.remove();
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

    async loadOlder() {
      if (this.loadingOlder || !this.hasMore || this.oldestSeq === null) return;
      this.loadingOlder = true;
      this.older.dataset.state = "loading";
      try {
        const url = `${this.config.turns_url}?before_seq=${this.oldestSeq}&limit=${this.config.page_size}`;
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(String(response.status));
        const page = await response.json();
        const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
        for (const turn of page.turns || []) {
          if (turn.active === false || this.turns.has(turn.id)) continue;
          if (turn.seq >= this.oldestSeq) continue;
          this.turns.set(turn.id, turn);
          this.renderTurn(turn);
        }
        const seqs = (page.turns || []).map((t) => t.seq);
        if (seqs.length) this.oldestSeq = Math.min(this.oldestSeq, ...seqs);
        this.hasMore = Boolean(page.has_more) && seqs.length > 0;
        this.refreshChrome();
        // Keep the message the user was reading where it was.
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

  function start() {
    const root = document.getElementById("chat");
    const config = document.getElementById("chat-config");
    const turns = document.getElementById("chat-turns");
    if (!root || !config || !turns) return;
    root.classList.add("has-js");
    window.companion.chat = new Chat(root, JSON.parse(config.textContent), JSON.parse(turns.textContent));
  }

  // One handle for the console and the browser tests.
  window.companion = { renderText, chat: null };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
