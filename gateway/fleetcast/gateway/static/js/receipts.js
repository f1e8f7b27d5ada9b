// Receipted alerts in the console (docs/receipts.md): each alert's receipt
// status (n sent, n delivered, n seen, acknowledged by whom) kept from the
// `alert_receipt` records the console receives (the consumer routes them to
// the alert's sender's user room and its incident room), and an acknowledge
// button. The console is a recipient too: it answers `delivered` when a
// receipted alert arrives and `displayed` once the panel has drawn it while
// the page is visible.
//
// ReceiptBook is pure (node-tested in tests/unit/console); ReceiptsPanel is
// the DOM and the socket's `receipt` calls, wired by app.js.

export const RECEIPT_TYPE = "alert_receipt";
const CLIENT_KINDS = new Set(["delivered", "displayed", "acknowledged"]);
const RETRYABLE = new Set(["unavailable", "rate_limited", "no_answer", "not_connected"]);
const MAX_ALERTS = 50; // kept in the book; the oldest go first
const SHOWN = 20; // drawn in the panel

function dataOf(payload) {
  return payload && typeof payload.data === "object" && payload.data !== null ? payload.data : {};
}

/** The alert an event stands for: an escalation (redelivery, supervisors' copy) counts for its original. */
export function alertKey(payload) {
  const of = dataOf(payload).escalation?.of;
  return typeof of === "string" ? of : payload?.event_id ?? null;
}

/** The alert a receipt counts for (its `of` when it answers an escalation). */
export function receiptKey(payload) {
  const data = dataOf(payload);
  return typeof data.of === "string" ? data.of : typeof data.delivery_id === "string" ? data.delivery_id : null;
}

function record(key) {
  return {
    key,
    alert: null, // the original's data, once this console has it
    type: null,
    at: null,
    level: 0, // the highest escalation level seen
    mine: [], // delivery ids this connection was written, oldest first (the ones it may answer)
    sent: new Set(), // recipients the gateways wrote it to
    delivered: new Set(), // recipients that said delivered, displayed or acknowledged
    seen: new Set(), // displayed or acknowledged
    acks: new Map(), // recipient -> response ("" when none), first acknowledgement kept
  };
}

/** Receipt status per alert, folded from deliveries and receipt records; repeats change nothing. */
export class ReceiptBook {
  constructor(limit = MAX_ALERTS) {
    this.limit = limit;
    this.alerts = new Map(); // alertKey -> record, oldest first
  }

  entry(key) {
    let entry = this.alerts.get(key);
    if (!entry) {
      entry = record(key);
      this.alerts.set(key, entry);
      while (this.alerts.size > this.limit) this.alerts.delete(this.alerts.keys().next().value);
    }
    return entry;
  }

  /** A receipted alert written to this connection; returns its record (null if it names nothing). */
  delivery(type, payload, at) {
    const key = alertKey(payload);
    if (typeof key !== "string" || typeof payload?.event_id !== "string") return null;
    const entry = this.entry(key);
    const data = dataOf(payload);
    const level = Number(data.escalation?.level ?? 0);
    if (entry.alert === null || !data.escalation) {
      entry.alert = data.escalation ? { ...data } : data;
      entry.type = type;
      entry.at = entry.at ?? at;
    }
    entry.level = Math.max(entry.level, Number.isFinite(level) ? level : 0);
    if (!entry.mine.includes(payload.event_id)) entry.mine.push(payload.event_id);
    return entry;
  }

  /** One `alert_receipt` record; returns the record it changed, or null for one it cannot read. */
  receipt(payload) {
    const key = receiptKey(payload);
    const data = dataOf(payload);
    if (key === null) return null;
    if (data.kind === "sent") {
      const recipients = Array.isArray(data.recipients) ? data.recipients : [];
      const entry = this.entry(key);
      for (const r of recipients) if (typeof r?.recipient === "string") entry.sent.add(r.recipient);
      return entry;
    }
    if (!CLIENT_KINDS.has(data.kind) || typeof data.recipient !== "string") return null;
    const entry = this.entry(key);
    entry.delivered.add(data.recipient);
    if (data.kind !== "delivered") entry.seen.add(data.recipient);
    if (data.kind === "acknowledged" && !entry.acks.has(data.recipient)) {
      entry.acks.set(data.recipient, typeof data.response === "string" ? data.response : "");
    }
    return entry;
  }
}

/** The counts of one record (what the panel shows and its data-* attributes carry). */
export function statusOf(entry) {
  return {
    sent: entry.sent.size,
    delivered: entry.delivered.size,
    seen: entry.seen.size,
    ackedBy: [...entry.acks.keys()],
  };
}

/** "3 sent · 2 delivered · 1 seen · acknowledged by unit-4 (en route)". */
export function statusText(entry) {
  const s = statusOf(entry);
  const acked = [...entry.acks].map(([who, response]) => (response ? `${who} (${response})` : who));
  const ack = acked.length ? `acknowledged by ${acked.join(", ")}` : "not acknowledged";
  const escalated = entry.level > 0 ? ` · escalated ×${entry.level}` : "";
  return `${s.sent} sent · ${s.delivered} delivered · ${s.seen} seen · ${ack}${escalated}`;
}

/** The panel: one item per alert, newest first; answers for this console through `send(body)`. */
export class ReceiptsPanel {
  /**
   * @param {object} els list (ul), count (span), response (input: the acknowledgement's text)
   * @param {function} send (body) -> Promise(ack): the socket's `receipt` call
   */
  constructor(els, send) {
    this.els = els;
    this.send = send;
    this.book = new ReceiptBook();
    this.types = new Set(); // receipted types (session.receipts)
    this.answered = new Set(); // "<delivery id>/<kind>" this page has sent
    this.outcome = new Map(); // alertKey -> {ok, code} of this console's acknowledgement
    this.drawPending = false;
    document.addEventListener("visibilitychange", () => this.schedule());
  }

  /** The session names the types to answer (none when the gateway keeps no receipts). */
  session(payload) {
    this.types = new Set(Array.isArray(payload?.receipts) ? payload.receipts : []);
  }

  /** Takes receipted alerts and receipt records; true when the event was a receipt record. */
  event(type, payload, at) {
    if (type === RECEIPT_TYPE) {
      if (this.book.receipt(payload)) this.schedule();
      return true;
    }
    if (this.types.has(type) && this.book.delivery(type, payload, at)) {
      this.answer(payload.event_id, "delivered");
      this.schedule();
    }
    return false;
  }

  /** One receipt of this page, once per delivery and kind (a replay after a reconnect is not news). */
  answer(deliveryId, kind, response) {
    const id = `${deliveryId}/${kind}`;
    if (this.answered.has(id)) return null;
    this.answered.add(id);
    const body = { delivery_id: deliveryId, kind, ...(response ? { response } : {}) };
    return this.send(body).then((ack) => {
      // unanswered, or refused for now: may be sent again (unknown_delivery and
      // invalid_receipt never change, e.g. an alert of a connection before a reconnect)
      if (!ack?.ok && RETRYABLE.has(ack?.error?.code)) this.answered.delete(id);
      return ack;
    });
  }

  async acknowledge(entry) {
    const deliveryId = entry.mine[entry.mine.length - 1];
    const response = this.els.response?.value.trim().slice(0, 140);
    const ack = await this.answer(deliveryId, "acknowledged", response);
    if (ack) this.outcome.set(entry.key, { ok: Boolean(ack.ok), code: ack.ok ? "" : ack.error?.code ?? "error" });
    this.schedule();
  }

  schedule() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.draw();
    });
  }

  draw() {
    const shown = [...this.book.alerts.values()].slice(-SHOWN).reverse();
    this.els.list.replaceChildren(...shown.map((entry) => this.item(entry)));
    this.els.count.textContent = String(this.book.alerts.size);
    if (document.visibilityState !== "visible") return;
    for (const entry of shown) for (const id of entry.mine) this.answer(id, "displayed");
  }

  item(entry) {
    const s = statusOf(entry);
    const li = document.createElement("li");
    li.className = `receipt${entry.acks.size ? " acked" : ""}${entry.level ? " escalated" : ""}`;
    Object.assign(li.dataset, {
      alert: entry.key,
      sent: String(s.sent),
      delivered: String(s.delivered),
      seen: String(s.seen),
      ackedBy: s.ackedBy.join(","),
    });
    const head = document.createElement("div");
    head.className = "what";
    const a = entry.alert ?? {};
    head.textContent = `${a.severity ?? ""} ${a.message ?? a.kind ?? a.alert_id ?? entry.key}`.trim();
    const status = document.createElement("div");
    status.className = "status";
    status.textContent = statusText(entry);
    status.title = `delivered: ${[...entry.delivered].join(", ") || "–"}\nseen: ${[...entry.seen].join(", ") || "–"}`;
    li.append(head, status);
    if (entry.mine.length) li.append(this.button(entry));
    return li;
  }

  button(entry) {
    const outcome = this.outcome.get(entry.key);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small ack";
    button.dataset.state = outcome ? (outcome.ok ? "acknowledged" : "refused") : "open";
    button.dataset.code = outcome?.code ?? "";
    button.textContent = outcome?.ok ? "Acknowledged" : outcome ? `Acknowledge (${outcome.code})` : "Acknowledge";
    button.disabled = Boolean(outcome?.ok);
    button.addEventListener("click", () => this.acknowledge(entry));
    return button;
  }
}
