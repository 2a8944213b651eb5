// The transcript's DOM: one <li> per turn (the same markup the server renders in
// templates/conversations/_turn.html), the actions under each, the inline editor and the
// bubbles of messages not yet stored. Text goes in through text nodes, or as the sanitised
// markup of chat-text.js.
import { renderText } from "./chat-text.js";

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function button(label, onclick, className, extra) {
  return el("button", { type: "button", className: className || "act", onclick, ...extra }, label);
}

function shell(id, className) {
  return el("li", { id, className },
    el("div", { className: "turn-meta" }),
    el("div", { className: "turn-body" }),
    el("div", { className: "turn-notice" }),
    el("div", { className: "turn-actions" }));
}

const FILTERED_HINT =
  "The model provider's safety filter blocked this reply. Rephrase your last message, or try again.";

export class TranscriptView {
  // `act(frame)` sends a client frame and says whether it could; `pending` has the outbox's
  // `retry(item)` and `discard(item)`.
  // `keepPinned(draw)` runs a streaming reply's delayed redraw (the page keeps following it).
  constructor(list, { userName, maxChars, act, pending, keepPinned }) {
    this.list = list;
    this.userName = userName;
    this.maxChars = maxChars;
    this.act = act;
    this.pendingActions = pending;
    this.last = { turns: [], locked: true };
    // The editor whose text was sent: it stays open until the server takes the edit.
    this.saving = null;
    // A streaming reply's next redraw: its whole text is rendered again each time.
    this.keepPinned = keepPinned || ((draw) => draw());
    this.streamDraw = { turn: null, timer: null, notBefore: 0 };
  }

  node(id) {
    return document.getElementById(`turn-${id}`);
  }

  // Draw a turn; `keepBody` leaves its text as it is (the server's rendering, or the same text).
  render(turn, { keepBody = false } = {}) {
    if (this.saving && this.saving.id === turn.id) {
      const { close } = this.saving;
      this.saving = null;
      close();  // the edit was taken; the turn is drawn as the server has it
    }
    let node = this.node(turn.id);
    const fresh = !node;
    if (fresh) {
      node = shell(`turn-${turn.id}`);
      this.place(node, turn.seq);
    }
    node.className = `turn turn-${turn.role} is-${turn.status}`;
    node.dataset.turnId = turn.id;
    node.dataset.seq = turn.seq;
    node.dataset.status = turn.status;
    this.renderMeta(node, turn);
    // A redraw still waiting means the text shown is behind: it is drawn now, from the newest.
    const behind = this.cancelStreamDraw(turn.id);
    if (fresh || !keepBody || behind) this.renderBody(turn);
    this.renderNotice(node, turn);
    node.dataset.sig = "";
  }

  remove(id) {
    if (this.saving && this.saving.id === id) this.saving = null;
    const node = this.node(id);
    if (node) node.remove();
  }

  place(node, seq) {
    for (const other of this.list.children) {
      if (other.classList.contains("is-pending") || Number(other.dataset.seq) > seq) {
        this.list.insertBefore(node, other);
        return;
      }
    }
    this.list.append(node);
  }

  renderMeta(node, turn) {
    const badges = [];
    if (turn.status === "streaming") badges.push(el("span", { className: "badge typing", text: "typing…" }));
    if (turn.status === "stopped") badges.push(el("span", { className: "badge", text: "stopped" }));
    if (turn.status === "failed") badges.push(el("span", { className: "badge danger", text: "failed" }));
    if (turn.finish_reason === "length" && turn.status !== "streaming") {
      badges.push(el("span", { className: "badge", text: "cut off" }));
    }
    node.querySelector(".turn-meta").replaceChildren(
      el("span", { className: "turn-name", text: turn.name }), ...badges);
  }

  // Redraw a streaming reply's text. Each redraw renders the whole text, so a long reply is
  // redrawn less often: after a redraw the next waits four times as long as it took, which keeps
  // rendering to about a fifth of the page's time however long the reply grows. The newest text
  // is always the one drawn.
  renderStreaming(turn) {
    const draw = this.streamDraw;
    if (draw.turn && draw.turn.id !== turn.id) {
      // Another reply's text is waiting: it is drawn before this one takes the slot.
      clearTimeout(draw.timer);
      draw.timer = null;
      this.drawStreaming();
    }
    draw.turn = turn;
    if (draw.timer !== null) return;
    const wait = draw.notBefore - performance.now();
    if (wait <= 0) {
      this.drawStreaming();
    } else {
      draw.timer = setTimeout(() => {
        draw.timer = null;
        this.keepPinned(() => this.drawStreaming());
      }, wait);
    }
  }

  drawStreaming() {
    const draw = this.streamDraw;
    const turn = draw.turn;
    draw.turn = null;
    if (!turn) return;
    const started = performance.now();
    this.renderBody(turn);
    const took = performance.now() - started;
    draw.notBefore = started + took * 5;
  }

  // Drop the waiting redraw of turn `id`; true when there was one.
  cancelStreamDraw(id) {
    const draw = this.streamDraw;
    if (!draw.turn || draw.turn.id !== id) return false;
    clearTimeout(draw.timer);
    draw.timer = null;
    draw.turn = null;
    return true;
  }

  renderBody(turn) {
    const node = this.node(turn.id);
    if (!node || node.dataset.editing) return;
    const body = node.querySelector(".turn-body");
    body.replaceChildren(renderText(turn.content));
    if (turn.status === "streaming" && !turn.content) {
      body.append(el("span", { className: "typing-dots", "aria-label": `${turn.name} is typing` },
        el("span"), el("span"), el("span")));
    }
  }

  renderNotice(node, turn) {
    const parts = [];
    if (turn.status === "failed" && turn.error) {
      parts.push(el("p", { className: "turn-error", role: "alert", text: turn.error.message }));
      if (turn.error.code === "content_filtered") {
        parts.push(el("p", { className: "turn-hint", text: FILTERED_HINT }));
      }
    }
    node.querySelector(".turn-notice").replaceChildren(...parts);
  }

  // Actions depend on a turn's place in the transcript and on whether the chat can act now,
  // so they are redrawn after every change; a signature skips the turns that stay the same.
  refreshActions(turns, locked) {
    this.last = { turns, locked };
    const lastTurn = turns[turns.length - 1];
    for (const turn of turns) {
      const node = this.node(turn.id);
      if (!node || node.dataset.editing) continue;
      const isLast = turn === lastTurn;
      const sig = [turn.status, turn.candidate_index, turn.candidate_count, turn.finish_reason,
        turn.error && turn.error.code, isLast, locked, node.dataset.confirming || ""].join("|");
      if (node.dataset.sig === sig) continue;
      node.dataset.sig = sig;
      node.querySelector(".turn-actions").replaceChildren(...this.actions(turn, isLast, locked, node));
    }
  }

  redraw() {
    this.refreshActions(this.last.turns, this.last.locked);
  }

  actions(turn, isLast, locked, node) {
    if (turn.status === "streaming") return [];
    const act = (frame) => () => this.act(frame);
    if (node.dataset.confirming) {
      const keep = () => { delete node.dataset.confirming; this.redraw(); };
      return [el("span", { className: "confirm", text: "Delete this message?" }),
        button("Delete", act({ type: "turn.delete", turn_id: turn.id }), "act danger"),
        button("Keep", keep)];
    }
    const dis = locked ? { disabled: true } : {};
    const acts = [];
    if (turn.role === "assistant" && turn.candidate_count > 1) {
      const i = turn.candidate_index;
      const n = turn.candidate_count;
      const select = (index) => act({ type: "reply.select", turn_id: turn.id, index });
      acts.push(el("span", { className: "swipes" },
        button("◀", select(i - 1), "act swipe", { "aria-label": "Previous candidate", disabled: locked || i <= 1 }),
        el("span", { className: "swipe-pos", text: `${i}/${n}` }),
        button("▶", select(i + 1), "act swipe", { "aria-label": "Next candidate", disabled: locked || i >= n })));
    }
    const regenerate = act({ type: "reply.regenerate", turn_id: turn.id });
    const carryOn = act({ type: "reply.continue" });
    if (turn.role === "assistant" && turn.status === "failed") {
      acts.push(button("Retry", regenerate, "act primary", dis));
    } else if (turn.role === "assistant" && isLast) {
      // A reply cut off at the length limit leads with Continue.
      const cut = turn.finish_reason === "length";
      if (cut) acts.push(button("Continue", carryOn, "act primary", dis));
      acts.push(button("Regenerate", regenerate, "act", dis));
      if (!cut) acts.push(button("Continue", carryOn, "act", dis));
    }
    acts.push(button("Edit", () => this.openEditor(turn), "act", dis));
    acts.push(button("Delete", () => { node.dataset.confirming = "1"; this.redraw(); }, "act", dis));
    return acts;
  }

  openEditor(turn) {
    const node = this.node(turn.id);
    if (!node) return;
    node.dataset.editing = "1";
    // A message is limited; a reply may be as long as the model made it.
    const area = el("textarea", { className: "edit-input", rows: 4,
      maxlength: turn.role === "user" ? this.maxChars : null, "aria-label": "Edit message" });
    area.value = turn.content;
    const close = () => {
      if (this.saving && this.saving.id === turn.id) this.saving = null;
      delete node.dataset.editing;
      node.dataset.sig = "";
      this.renderBody(this.turnNow(turn));
      this.renderNotice(node, this.turnNow(turn));
      this.redraw();
    };
    const saveButton = button(turn.role === "user" ? "Save and send" : "Save", () => save(),
      "act primary");
    const save = () => {
      const text = area.value.trim();
      if (!text || !this.act({ type: "turn.edit", turn_id: turn.id, text })) return;
      // Kept open until the server takes it: a refused edit keeps its text (editorRefused).
      area.disabled = saveButton.disabled = true;
      this.saving = { id: turn.id, area, saveButton, close };
    };
    area.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        save();
      }
    });
    node.querySelector(".turn-body").replaceChildren(area);
    node.querySelector(".turn-actions").replaceChildren(saveButton, button("Cancel", close));
    area.focus();
  }

  // The server refused the edit being saved: its editor opens again, with the reason.
  editorRefused(message) {
    const saving = this.saving;
    this.saving = null;
    const node = saving && this.node(saving.id);
    if (!node) return false;
    saving.area.disabled = saving.saveButton.disabled = false;
    node.querySelector(".turn-notice").replaceChildren(
      el("p", { className: "turn-error", role: "alert", text: message }));
    saving.area.focus();
    return true;
  }

  // The newest state of a turn whose editor closes (events may have changed it meanwhile).
  turnNow(turn) {
    return this.last.turns.find((t) => t.id === turn.id) || turn;
  }

  pending(item, state) {
    const id = `pending-${item.clientId}`;
    let node = document.getElementById(id);
    if (!node) {
      node = shell(id, "turn turn-user is-pending");
      node.querySelector(".turn-body").append(renderText(item.text));
      this.list.append(node);
    }
    node.querySelector(".turn-meta").replaceChildren(
      el("span", { className: "turn-name", text: this.userName }),
      el("span", { className: item.error ? "badge danger" : "badge", text: state }));
    node.querySelector(".turn-notice").replaceChildren(
      ...(item.error ? [el("p", { className: "turn-error", role: "alert", text: item.error })] : []));
    node.querySelector(".turn-actions").replaceChildren(...(item.error ? [
      button("Retry", () => this.pendingActions.retry(item), "act primary"),
      button("Discard", () => this.pendingActions.discard(item)),
    ] : []));
  }

  removePending(item) {
    const node = document.getElementById(`pending-${item.clientId}`);
    if (node) node.remove();
  }
}
