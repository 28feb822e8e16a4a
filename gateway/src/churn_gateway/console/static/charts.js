// Charts as plain SVG built with DOM calls. Each chart has a text alternative (role="img",
// aria-label, <title>) and the caller shows the numbers as text next to it.

import { s } from "./dom.js";

const WIDTH = 600;
const HEIGHT = 220;
const PAD = { left: 52, right: 12, top: 12, bottom: 30 };

function frame(label) {
  return s("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": label,
    preserveAspectRatio: "xMidYMid meet",
  }, s("title", {}, label));
}

function axis(svg, maxValue) {
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotHeight * (1 - fraction);
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }),
      s("text", { class: "tick", x: PAD.left - 6, y: y + 4, "text-anchor": "end" },
        Math.round(maxValue * fraction).toLocaleString()),
    );
  }
}

/** Bars for ``counts`` over equal bins of [0, 1] (probabilities). */
export function histogram(counts, label) {
  const svg = frame(label);
  // An even top, so the middle tick is a whole number too.
  const maxValue = Math.max(2, Math.ceil(Math.max(...counts) / 2) * 2);
  axis(svg, maxValue);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const barWidth = plotWidth / counts.length;
  counts.forEach((count, index) => {
    const barHeight = (count / maxValue) * plotHeight;
    const low = index / counts.length;
    const high = (index + 1) / counts.length;
    const level = high <= 0.3 ? "low" : low >= 0.7 ? "high" : "medium";
    svg.append(
      s("rect", {
        class: `bar bar-${level}`,
        x: PAD.left + index * barWidth + 1,
        y: PAD.top + plotHeight - barHeight,
        width: Math.max(1, barWidth - 2),
        height: barHeight,
      }, s("title", {}, `${(low * 100).toFixed(0)}–${(high * 100).toFixed(0)} %: ${count}`)),
    );
  });
  for (const fraction of [0, 0.5, 1]) {
    svg.append(
      s("text", {
        class: "tick",
        x: PAD.left + plotWidth * fraction,
        y: HEIGHT - 8,
        "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle",
      }, `${fraction * 100} %`),
    );
  }
  return svg;
}

/** A line over ``points`` [{at: Date, value: 0..1}], oldest first. */
export function lineChart(points, label) {
  const svg = frame(label);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotHeight * (1 - fraction);
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }),
      s("text", { class: "tick", x: PAD.left - 6, y: y + 4, "text-anchor": "end" },
        `${fraction * 100} %`),
    );
  }
  if (points.length === 0) return svg;
  const times = points.map((point) => point.at.getTime());
  const first = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - first);
  const xy = points.map((point) => [
    PAD.left + ((point.at.getTime() - first) / span) * plotWidth,
    PAD.top + (1 - point.value) * plotHeight,
  ]);
  const day = (time) => new Date(time).toLocaleDateString(undefined, { dateStyle: "medium" });
  svg.append(
    s("text", { class: "tick", x: PAD.left, y: HEIGHT - 8, "text-anchor": "start" }, day(first)),
    s("text", { class: "tick", x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end" },
      day(first + span)),
    s("polyline", { class: "line", points: xy.map((p) => p.join(",")).join(" ") }),
  );
  xy.forEach(([x, y], index) => {
    svg.append(s("circle", { class: "dot", cx: x, cy: y, r: 3 },
      s("title", {}, `${points[index].at.toLocaleString()}: ${(points[index].value * 100).toFixed(1)} %`)));
  });
  return svg;
}
