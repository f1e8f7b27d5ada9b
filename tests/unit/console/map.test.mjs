// Pure parts of the console's map (static/js/map.js, static/js/offline.js), run by
// node's test runner from tests/unit/test_console_js.py; Leaflet itself is the
// browser test's business.
import assert from "node:assert/strict";
import { test } from "node:test";

import { statusClass, unitDetails } from "../../../gateway/fleetcast/gateway/static/js/map.js";
import { gridLines, niceStep } from "../../../gateway/fleetcast/gateway/static/js/offline.js";

const AT = "2026-11-25T18:00:00.000Z";
const T0 = Date.parse(AT);

test("units are coloured by what their status means, whatever a service calls it", () => {
  assert.equal(statusClass("available"), "st-available");
  assert.equal(statusClass("EN_ROUTE"), "st-enroute");
  assert.equal(statusClass("on_scene"), "st-busy");
  assert.equal(statusClass("out_of_service"), "st-out");
  assert.equal(statusClass("emergency"), "st-emergency");
  assert.equal(statusClass(null), "st-unknown");
  assert.equal(statusClass("something new"), "st-unknown");
});

test("a unit's popup names it, its status, when it last reported and how fast", () => {
  const unit = { id: "unit-007", status: "en_route", occurred_at: AT, speed_kmh: 42.5, heading: 270.4 };
  assert.deepEqual(unitDetails(unit, T0 + 3000), [
    ["unit", "unit-007"],
    ["status", "en_route"],
    ["position", "18:00:00 (3 s ago)"],
    ["speed", "42.5 km/h"],
    ["heading", "270°"],
  ]);
});

test("a callsign leads when there is one; what is missing says so", () => {
  const rows = unitDetails({ id: "u-1", callsign: "Medic 12", status: null, speed: 3 }, T0);
  assert.deepEqual(rows, [
    ["unit", "Medic 12"],
    ["id", "u-1"],
    ["status", "no status yet"],
    ["position", "–"],
    ["speed", "3 m/s"],
  ]);
  assert.deepEqual(unitDetails({ id: "u-2", seenAt: T0 }, T0).slice(2), [["position", "18:00:00 (0 s ago)"], ["speed", "–"]]);
});

test("grid steps are round numbers giving a handful of lines", () => {
  assert.equal(niceStep(0.08), 0.01);
  assert.equal(niceStep(0.16), 0.02);
  assert.equal(niceStep(0.3), 0.05);
  assert.equal(niceStep(80), 10);
  assert.equal(niceStep(360), 50);
});

test("the offline grid's lines fall on its step inside the view, labelled to its precision", () => {
  const grid = gridLines(40.70, -74.06, 40.80, -73.96);
  assert.equal(grid.step, 0.02); // 0.1 degrees / 8 lines = 0.0125, rounded up
  assert.equal(grid.digits, 2);
  assert.deepEqual(grid.lats, [40.7, 40.72, 40.74, 40.76, 40.78, 40.8]);
  assert.deepEqual(grid.lons, [-74.06, -74.04, -74.02, -74, -73.98, -73.96]);
});

test("the whole world stays within the latitudes a web map shows", () => {
  const grid = gridLines(-89, -180, 89, 180);
  assert.equal(grid.step, 50);
  assert.deepEqual(grid.lats, [-50, 0, 50]);
  assert.deepEqual(grid.lons, [-150, -100, -50, 0, 50, 100, 150]);
});
