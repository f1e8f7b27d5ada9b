// Delivery latency (now - occurred_at) as a small live chart: per-second
// p50 and p99 over the last minute, drawn on a canvas a few times a second.

import { percentile } from "./events.js";

const WINDOW_S = 60;
const MAX_SAMPLES_PER_SECOND = 2000;

export class LatencyChart {
  constructor(canvas, readout) {
    this.canvas = canvas;
    this.readout = readout;
    this.seconds = new Map(); // epoch second -> samples (ms)
  }

  add(ms, at) {
    if (ms === null || !Number.isFinite(ms)) return;
    const second = Math.floor(at / 1000);
    let samples = this.seconds.get(second);
    if (!samples) {
      samples = [];
      this.seconds.set(second, samples);
      for (const old of this.seconds.keys()) if (old < second - WINDOW_S) this.seconds.delete(old);
    }
    if (samples.length < MAX_SAMPLES_PER_SECOND) samples.push(ms);
  }

  /** [{second, p50, p99}] for the window, oldest first; seconds without samples are skipped. */
  series(now = Date.now()) {
    const current = Math.floor(now / 1000);
    const points = [];
    for (let s = current - WINDOW_S + 1; s <= current; s += 1) {
      const samples = this.seconds.get(s);
      if (!samples || samples.length === 0) continue;
      const sorted = [...samples].sort((a, b) => a - b);
      points.push({ second: s, p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length });
    }
    return points;
  }

  draw(now = Date.now()) {
    const points = this.series(now);
    const all = [...this.seconds.values()].flat().sort((a, b) => a - b);
    const p50 = percentile(all, 50);
    const p99 = percentile(all, 99);
    this.readout.textContent = p50 === null ? "no samples yet" : `p50 ${fmt(p50)} · p99 ${fmt(p99)} · n=${all.length}`;
    const ctx = this.canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (this.canvas.width !== Math.round(w * ratio)) {
      this.canvas.width = Math.round(w * ratio);
      this.canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const top = niceCeiling(Math.max(10, ...points.map((p) => p.p99)));
    const x = (second) => 30 + ((second - (Math.floor(now / 1000) - WINDOW_S + 1)) / (WINDOW_S - 1)) * (w - 36);
    const y = (ms) => h - 14 - (Math.min(ms, top) / top) * (h - 22);
    ctx.font = "10px ui-monospace, 'DejaVu Sans Mono', monospace";
    ctx.fillStyle = "#5d6f82";
    ctx.strokeStyle = "#1d2936";
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      ctx.beginPath();
      ctx.moveTo(30, y(v));
      ctx.lineTo(w - 4, y(v));
      ctx.stroke();
      ctx.fillText(fmt(v), 0, y(v) + 3);
    }
    ctx.fillText(`-${WINDOW_S}s`, 30, h - 2);
    ctx.fillText("now", w - 24, h - 2);
    line(ctx, points, x, y, "p99", "#ff7a45");
    line(ctx, points, x, y, "p50", "#39c5e0");
  }
}

function line(ctx, points, x, y, key, color) {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.second), y(p[key])) : ctx.lineTo(x(p.second), y(p[key]))));
  ctx.stroke();
  for (const p of points) ctx.fillRect(x(p.second) - 1, y(p[key]) - 1, 2, 2);
  ctx.lineWidth = 1;
}

function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= v);
}

export function fmt(ms) {
  if (ms === null) return "–";
  if (Math.abs(ms) >= 10000) return `${(ms / 1000).toFixed(0)}s`;
  if (Math.abs(ms) >= 1000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.round(ms)}ms`;
}
