// The console's receipt book (static/js/receipts.js), run by node's test runner
// from tests/unit/test_console_js.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { alertKey, ReceiptBook, receiptKey, statusOf, statusText } from "../../../gateway/fleetcast/gateway/static/js/receipts.js";

const alert = { event_id: "ev-1", event_type: "alert_created", data: { alert_id: "al-1", severity: "critical", message: "officer down" } };

function receipt(kind, recipient, extra = {}) {
  return { event_type: "alert_receipt", data: { delivery_id: "ev-1", kind, recipient, session: `s-${recipient}`, ...extra } };
}

function sent(...recipients) {
  return { event_type: "alert_receipt", data: { delivery_id: "ev-1", kind: "sent", recipients: recipients.map((r) => ({ recipient: r, session: `s-${r}` })) } };
}

test("counts are distinct recipients; a repeat or a replay changes nothing", () => {
  const book = new ReceiptBook();
  book.delivery("alert_created", alert, 1);
  for (const doc of [sent("unit-a", "disp-1"), sent("unit-b"), sent("unit-a")]) book.receipt(doc);
  for (const doc of [receipt("delivered", "unit-a"), receipt("delivered", "unit-a"), receipt("displayed", "unit-a"), receipt("delivered", "unit-b")]) {
    book.receipt(doc);
  }
  const entry = book.alerts.get("ev-1");
  assert.deepEqual(statusOf(entry), { sent: 3, delivered: 2, seen: 1, ackedBy: [] });
  assert.equal(statusText(entry), "3 sent · 2 delivered · 1 seen · not acknowledged");
});

test("an acknowledgement counts as seen and delivered, keeps its first response", () => {
  const book = new ReceiptBook();
  book.delivery("alert_created", alert, 1);
  book.receipt(receipt("acknowledged", "unit-a", { response: "en route" }));
  book.receipt(receipt("acknowledged", "unit-a", { response: "later" }));
  book.receipt(receipt("acknowledged", "disp-1"));
  const entry = book.alerts.get("ev-1");
  assert.deepEqual(statusOf(entry), { sent: 0, delivered: 2, seen: 2, ackedBy: ["unit-a", "disp-1"] });
  assert.equal(statusText(entry), "0 sent · 2 delivered · 2 seen · acknowledged by unit-a (en route), disp-1");
});

test("an escalation and its receipts count for the original alert", () => {
  const book = new ReceiptBook();
  book.delivery("alert_created", alert, 1);
  const again = { event_id: "ev-1/escalation/1", event_type: "alert_created", data: { ...alert.data, urgency: "high", escalation: { of: "ev-1", level: 1, step: 0 } } };
  assert.equal(alertKey(again), "ev-1");
  book.delivery("alert_created", again, 2);
  const answer = { data: { delivery_id: "ev-1/escalation/1", of: "ev-1", kind: "displayed", recipient: "unit-a" } };
  assert.equal(receiptKey(answer), "ev-1");
  book.receipt(answer);
  const entry = book.alerts.get("ev-1");
  assert.equal(book.alerts.size, 1);
  assert.deepEqual(entry.mine, ["ev-1", "ev-1/escalation/1"]); // the newest is the one acknowledged
  assert.equal(entry.alert.message, "officer down");
  assert.equal(entry.level, 1);
  assert.match(statusText(entry), /1 seen · not acknowledged · escalated ×1$/);
});

test("receipts of an alert this console never got are kept, unreadable ones ignored", () => {
  const book = new ReceiptBook(2);
  assert.equal(book.receipt({ data: { kind: "delivered" } }), null);
  assert.equal(book.receipt({ data: { delivery_id: "ev-1", kind: "bogus", recipient: "u" } }), null);
  assert.equal(book.receipt({ data: { delivery_id: "ev-1", kind: "delivered" } }), null);
  const entry = book.receipt(receipt("delivered", "unit-a"));
  assert.deepEqual(entry.mine, []); // nothing this console may answer
  book.receipt({ data: { delivery_id: "ev-2", kind: "delivered", recipient: "u" } });
  book.receipt({ data: { delivery_id: "ev-3", kind: "delivered", recipient: "u" } });
  assert.deepEqual([...book.alerts.keys()], ["ev-2", "ev-3"]); // bounded: the oldest went
});
