// Pure readers of the console (static/js/events.js), run by node's test runner
// from tests/unit/test_console_js.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  coordinates, describe, isClosed, latencyMs, occurredTimes, percentile, positionsOf, readSession, statusesOf,
} from "../../../gateway/fleetcast/gateway/static/js/events.js";

const AT = "2026-11-25T18:00:00.000Z";
const T0 = Date.parse(AT);

test("a single position event becomes one position with its time", () => {
  const event = { event_type: "asset_position_updated", occurred_at: AT, data: { asset_id: "u-1", lat: 40.7, lon: -74, heading: 90 } };
  assert.deepEqual(positionsOf("asset_position_updated", event), [
    { asset_id: "u-1", lat: 40.7, lon: -74, heading: 90, occurred_at: AT },
  ]);
});

test("a batch carries data objects or whole envelopes, and skips what has no place", () => {
  const batch = {
    event_type: "asset_positions",
    data: {
      positions: [
        { asset_id: "u-1", lat: 1, lon: 2, occurred_at: AT },
        { event_type: "asset_position_updated", occurred_at: AT, data: { asset_id: "u-2", location: { lat: 3, lon: 4 } } },
        { asset_id: "u-3" },
        null,
      ],
    },
  };
  const got = positionsOf("asset_positions", batch);
  assert.deepEqual(got.map((p) => [p.asset_id, p.lat, p.lon, p.occurred_at]), [["u-1", 1, 2, AT], ["u-2", 3, 4, AT]]);
  assert.deepEqual(occurredTimes("asset_positions", batch), [AT, AT]);
});

test("a snapshot gives positions and statuses, as lists or keyed objects", () => {
  const snapshot = {
    data: {
      positions: { "u-1": { event_type: "asset_position_updated", occurred_at: AT, data: { asset_id: "u-1", lat: 1, lon: 2 } } },
      statuses: [{ data: { asset_id: "u-1", status: "on_scene" } }, { asset_id: "u-2", new_status: "available" }],
    },
  };
  assert.equal(positionsOf("fleet_snapshot", snapshot).length, 1);
  assert.deepEqual(statusesOf("fleet_snapshot", snapshot), [
    { asset_id: "u-1", status: "on_scene" },
    { asset_id: "u-2", status: "available" },
  ]);
  assert.deepEqual(occurredTimes("fleet_snapshot", snapshot), []);
});

test("other events carry no positions", () => {
  assert.deepEqual(positionsOf("incident_created", { data: { incident_id: "i", lat: 1, lon: 2 } }), []);
  assert.deepEqual(positionsOf("asset_positions", "garbage"), []);
});

test("coordinates accept the usual spellings and refuse junk", () => {
  assert.deepEqual(coordinates({ latitude: "1.5", longitude: 2 }), { lat: 1.5, lon: 2 });
  assert.deepEqual(coordinates({ position: { lat: 1, lng: 2 } }), { lat: 1, lon: 2 });
  assert.equal(coordinates({ lat: "north", lon: 2 }), null);
  assert.equal(coordinates(null), null);
});

test("latency, percentiles, closed states", () => {
  assert.equal(latencyMs(AT, T0 + 42), 42);
  assert.equal(latencyMs("not a time", T0), null);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([], 99), null);
  assert.ok(isClosed("Closed") && isClosed("resolved") && !isClosed("contained"));
});

test("the session reader takes the gateway's names and others", () => {
  const s = readSession({ user: "d-1", org: "org-1", roles: ["dispatcher"], rooms: ["org"], gateway: "gw", expires_at: 99 });
  assert.deepEqual(s, { user: "d-1", org: "org-1", roles: ["dispatcher"], rooms: ["org"], sid: null, gateway: "gw", expiresAt: 99 });
  assert.equal(readSession({ sub: "x", org_id: "o" }).org, "o");
});

test("describe puts ids first and skips nested objects", () => {
  const text = describe("incident_created", { data: { priority: 1, incident_id: "inc-9", location: { lat: 1 } } });
  assert.equal(text, "incident_id=inc-9 priority=1");
  assert.equal(describe("x", { data: { confidence: 0.93, lat: 40.712345678 } }), "confidence=0.93 lat=40.71235");
  assert.equal(describe("asset_positions", { data: { positions: [{ asset_id: "a", lat: 1, lon: 2 }] } }), "1 positions");
});
