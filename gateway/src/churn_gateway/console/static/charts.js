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

/** A reliability diagram: for each probability bin of ``table`` ([{bin_lower, bin_upper,
 * mean_predicted, observed_rate, count}], the model's out-of-fold calibration table), the mean
 * predicted probability (x) against the observed churn rate (y); the diagonal is perfect
 * calibration. Empty bins are left out; each point's title gives its numbers. */
export function reliabilityChart(table, label) {
  const svg = frame(label);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (value) => PAD.left + value * plotWidth;
  const y = (value) => PAD.top + (1 - value) * plotHeight;
  for (const fraction of [0, 0.5, 1]) {
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(fraction), y2: y(fraction) }),
      s("text", { class: "tick", x: PAD.left - 6, y: y(fraction) + 4, "text-anchor": "end" },
        `${fraction * 100} %`),
      s("text", {
        class: "tick",
        x: x(fraction),
        y: HEIGHT - 8,
        "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle",
      }, `${fraction * 100} %`),
    );
  }
  svg.append(s("line", { class: "diagonal", x1: x(0), y1: y(0), x2: x(1), y2: y(1) },
    s("title", {}, "Perfect calibration")));
  const filled = table.filter((bin) => bin.count > 0 && typeof bin.mean_predicted === "number"
    && typeof bin.observed_rate === "number");
  if (filled.length === 0) return svg;
  svg.append(s("polyline", {
    class: "line",
    points: filled.map((bin) => `${x(bin.mean_predicted)},${y(bin.observed_rate)}`).join(" "),
  }));
  for (const bin of filled) {
    svg.append(s("circle", { class: "dot calibration-point", cx: x(bin.mean_predicted), cy: y(bin.observed_rate), r: 4 },
      s("title", {}, `${(bin.bin_lower * 100).toFixed(0)}–${(bin.bin_upper * 100).toFixed(0)} %: ` +
        `predicted ${(bin.mean_predicted * 100).toFixed(1)} %, observed ${(bin.observed_rate * 100).toFixed(1)} % ` +
        `of ${bin.count} customers`)));
  }
  return svg;
}

/** Several lines of counts over days: ``days`` ["2026-11-01", …] oldest first and ``series``
 * [{name, className, values: [number per day]}]. A legend names each line in words. */
export function trendChart(days, series, label) {
  const svg = frame(label);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom - 16;
  const top = PAD.top + 16;
  const peak = Math.max(2, ...series.flatMap((line) => line.values));
  const maxValue = Math.ceil(peak / 2) * 2;
  for (const fraction of [0, 0.5, 1]) {
    const yy = top + plotHeight * (1 - fraction);
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: yy, y2: yy }),
      s("text", { class: "tick", x: PAD.left - 6, y: yy + 4, "text-anchor": "end" },
        Math.round(maxValue * fraction).toLocaleString()),
    );
  }
  const x = (index) => PAD.left + (days.length > 1 ? (index / (days.length - 1)) * plotWidth : plotWidth / 2);
  const y = (value) => top + (1 - value / maxValue) * plotHeight;
  if (days.length) {
    svg.append(
      s("text", { class: "tick", x: PAD.left, y: HEIGHT - 8, "text-anchor": "start" }, days[0]),
      s("text", { class: "tick", x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end" }, days[days.length - 1]),
    );
  }
  series.forEach((line, position) => {
    const legendX = PAD.left + position * 130;
    svg.append(
      s("line", { class: `series ${line.className}`, x1: legendX, x2: legendX + 18, y1: PAD.top + 2, y2: PAD.top + 2 }),
      s("text", { class: "tick legend", x: legendX + 22, y: PAD.top + 6 }, line.name),
    );
    if (!days.length) return;
    svg.append(s("polyline", {
      class: `series ${line.className}`,
      points: line.values.map((value, index) => `${x(index)},${y(value)}`).join(" "),
    }, s("title", {}, `${line.name}: ${line.values[line.values.length - 1]} on ${days[days.length - 1]}`)));
  });
  return svg;
}
