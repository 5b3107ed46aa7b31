// Dependency-free SVG bar charts for the CPU benchmark results: one grouped bar
// chart per ChartSpec, or a grid of them in one document. The output is a pure
// function of the input (no dates, ids, randomness or locale formatting), so a
// chart can be committed next to its results and diffed.

export interface ChartSeries { name: string; values: (number | null)[] }   // one value per group; null = not run / unsupported
export interface ChartSpec {
  title: string;
  yLabel: string;
  groups: string[];
  series: ChartSeries[];
  refLines?: { label: string; value: number }[];  // horizontal dashed lines, e.g. measured FMA peak
}

const W = 900, H = 420;  // one panel
const FONT = 'Helvetica, Arial, sans-serif';  // installed fonts only: nothing to fetch
// Okabe-Ito: distinguishable under the common colour-vision deficiencies. Yellow
// goes last because it is the hardest to see on white; beyond 8 series it cycles.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#F0E442'];

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** Escapes markup and drops the control characters XML 1.0 forbids outright. */
const esc = (s: string) => s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '').replace(/[&<>"']/g, (c) => ENTITIES[c]);
/** Coordinates to 0.1 px: plenty for a screen and keeps the text short. */
const px = (x: number) => String(Math.round(x * 10) / 10);
/** No font metrics without a renderer; 0.6 em per character over-estimates Helvetica/Arial, so layout errs toward space. */
const textW = (s: string, size: number) => s.length * size * 0.6;
const isNum = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);
const fmtValue = (v: number) => v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
/** Shortens s with an ellipsis to about width px at the given size. */
const fit = (s: string, width: number, size: number) =>
  textW(s, size) <= width ? s : s.slice(0, Math.max(1, Math.floor(width / (size * 0.6)) - 1)) + '\u2026';

/** Y-axis ticks: a step of 1, 2 or 5 × 10^k giving about 5 intervals, spanning 0 and every value. */
function axis(spec: ChartSpec): { ticks: number[]; decimals: number } {
  const vals = [...spec.series.flatMap((s) => s.values), ...(spec.refLines ?? []).map((r) => r.value)].filter(isNum);
  const lo = Math.min(0, ...vals);
  const hi = Math.max(0, ...vals) || (lo < 0 ? 0 : 1);  // nothing but nulls and zeros: show 0..1
  const raw = (hi - lo) / 5, mag = 10 ** Math.floor(Math.log10(raw)), f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  // Ticks are integer multiples of the step (not running sums), and the epsilon keeps
  // 0.3 / 0.1 = 2.9999999999999996 from growing an extra tick.
  const kLo = Math.floor(lo / step + 1e-9), kHi = Math.max(Math.ceil(hi / step - 1e-9), kLo + 1);
  const ticks = Array.from({ length: kHi - kLo + 1 }, (_, i) => (kLo + i) * step);
  return { ticks, decimals: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

/** Series name → colour, in order of first appearance, so a series keeps its colour in every panel. */
function colorsFor(specs: ChartSpec[]): Map<string, string> {
  const colors = new Map<string, string>();
  for (const s of specs.flatMap((spec) => spec.series)) if (!colors.has(s.name)) colors.set(s.name, PALETTE[colors.size % PALETTE.length]);
  return colors;
}

/** One W×H panel with its origin at (0, 0). */
function panel(spec: ChartSpec, colors: Map<string, string>): string {
  const out: string[] = [];
  const { ticks, decimals } = axis(spec);
  const left = 34 + Math.max(...ticks.map((t) => textW(t.toFixed(decimals), 11))), right = W - 16;
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);

  // Legend under the title, wrapping onto more rows when the names do not fit.
  let lx = left, ly = 38;
  for (const s of spec.series) {
    const w = 17 + textW(s.name, 12) + 18;
    if (lx + w > right && lx > left) { lx = left; ly += 18; }
    out.push(`<rect x="${px(lx)}" y="${ly}" width="12" height="12" fill="${colors.get(s.name)}"/>`,
      `<text x="${px(lx + 17)}" y="${ly + 10}" font-size="12">${esc(s.name)}</text>`);
    lx += w;
  }

  // Group labels are rotated by 35° when the widest one does not fit its group's
  // width; the plot then gives up as much height as they need, up to a limit past
  // which labels are shortened (the full one stays in a tooltip).
  const nGroups = Math.max(1, spec.groups.length);
  const groupW = (right - left) / nGroups;
  const labelW = Math.max(0, ...spec.groups.map((g) => textW(g, 11)));
  const rotate = labelW > groupW - 6, maxRotated = 200;
  const top = ly + 30, bottom = H - (rotate ? 16 + Math.min(labelW, maxRotated) * 0.574 + 11 * 0.819 : 28);  // sin/cos 35°
  const y = (v: number) => bottom - ((v - ticks[0]) / (ticks[ticks.length - 1] - ticks[0])) * (bottom - top);

  for (const t of ticks) {
    out.push(`<line x1="${px(left)}" x2="${right}" y1="${px(y(t))}" y2="${px(y(t))}" stroke="#e3e3e3"/>`,
      `<text x="${px(left - 6)}" y="${px(y(t) + 4)}" text-anchor="end" font-size="11" fill="#444">${t.toFixed(decimals)}</text>`);
  }
  out.push(`<text transform="translate(16,${px((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="12">${esc(spec.yLabel)}</text>`);

  // Bars share 80% of a group in equal slots, capped so that a few bars do not turn
  // into slabs. Value labels only when every one fits its slot; otherwise they would
  // overlap, and the <title> tooltip still has them.
  const nSeries = Math.max(1, spec.series.length);
  const slot = Math.min((groupW * 0.8) / nSeries, 56), barW = slot * 0.88, y0 = y(0);
  const showValues = spec.series.every((s) => s.values.every((v) => !isNum(v) || textW(fmtValue(v), 10) <= slot));
  const naFlat = textW('n/a', 9) + 2 <= slot;
  spec.groups.forEach((group, gi) => {
    const gx = left + gi * groupW;
    spec.series.forEach((s, si) => {
      const v = s.values[gi], cx = gx + (groupW - nSeries * slot) / 2 + (si + 0.5) * slot;
      if (!isNum(v)) {
        out.push(naFlat
          ? `<text x="${px(cx)}" y="${px(y0 - 4)}" text-anchor="middle" font-size="9" fill="#888">n/a</text>`
          : `<text transform="translate(${px(cx + 3)},${px(y0 - 4)}) rotate(-90)" font-size="9" fill="#888">n/a</text>`);
        return;
      }
      const yv = y(v);
      out.push(`<rect x="${px(cx - barW / 2)}" y="${px(Math.min(yv, y0))}" width="${px(barW)}" height="${px(Math.abs(y0 - yv))}" fill="${colors.get(s.name)}">` +
        `<title>${esc(`${s.name}, ${group}: ${fmtValue(v)} ${spec.yLabel}`)}</title></rect>`);
      if (showValues) out.push(`<text x="${px(cx)}" y="${px(v >= 0 ? yv - 3 : yv + 10)}" text-anchor="middle" font-size="10" fill="#333">${fmtValue(v)}</text>`);
    });
    // A rotated label runs down to the left, so near the left edge it is also shortened to stay on the panel.
    const cx = gx + groupW / 2, shown = rotate ? fit(group, Math.min(maxRotated, (cx - 16) / 0.819), 11) : group;
    const tip = shown === group ? '' : `<title>${esc(group)}</title>`;
    out.push(rotate
      ? `<text transform="translate(${px(cx)},${px(bottom + 14)}) rotate(-35)" text-anchor="end" font-size="11">${tip}${esc(shown)}</text>`
      : `<text x="${px(cx)}" y="${px(bottom + 18)}" text-anchor="middle" font-size="11">${esc(group)}</text>`);
  });
  out.push(`<line x1="${px(left)}" x2="${px(left)}" y1="${px(top)}" y2="${px(bottom)}" stroke="#333"/>`,
    `<line x1="${px(left)}" x2="${right}" y1="${px(y0)}" y2="${px(y0)}" stroke="#333"/>`);

  // Reference lines go on top of the bars; the white halo keeps their label legible over a bar.
  for (const r of (spec.refLines ?? []).filter((r) => isNum(r.value))) {
    const yr = px(y(r.value));
    out.push(`<line x1="${px(left)}" x2="${right}" y1="${yr}" y2="${yr}" stroke="#222" stroke-width="1.2" stroke-dasharray="6 4"/>`,
      `<text x="${right - 4}" y="${px(y(r.value) - 4)}" text-anchor="end" font-size="11" fill="#222" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(`${r.label} (${fmtValue(r.value)})`)}</text>`);
  }
  return out.join('\n');
}

function svgDocument(width: number, height: number, title: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">\n` +
    `<title>${esc(title)}</title>\n<rect width="${width}" height="${height}" fill="#fff"/>\n${body}\n</svg>\n`;
}

/** One grouped bar chart as a complete standalone SVG document. */
export function renderBarChart(spec: ChartSpec): string {
  return svgDocument(W, H, spec.title, panel(spec, colorsFor([spec])));
}

/** Several charts as a grid of panels (row by row) in one SVG document, with one colour per series name across all of them. */
export function renderChartPanels(specs: ChartSpec[], columns = 2): string {
  const cols = Math.min(Math.max(1, Math.floor(columns) || 1), Math.max(1, specs.length));
  const rows = Math.max(1, Math.ceil(specs.length / cols));
  const colors = colorsFor(specs);
  const body = specs.map((spec, i) => `<g transform="translate(${(i % cols) * W},${Math.floor(i / cols) * H})">\n${panel(spec, colors)}\n</g>`);
  return svgDocument(cols * W, rows * H, specs.map((s) => s.title).join('; '), body.join('\n'));
}
