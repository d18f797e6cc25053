/**
 * Text escaping and number formatting shared by the HTML report and the Markdown model card.
 * Partner names, group labels and audit messages are untrusted text: every one goes through
 * `escapeHtml` / `escapeMarkdown` before it reaches the output.
 */

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Safe in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/**
 * JSON for a `<script type="application/json">` block: `<` is written as \u003c so no value can
 * close the script element (`</script>`) or open a comment; U+2028/9 for old JSON-in-JS parsers.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * Makes untrusted text inert in Markdown while keeping it readable: inline syntax (`\ ` * _ [ ] | ~`)
 * is backslash-escaped everywhere, block syntax (`#`, `-`, `+`, `1.`) only where it could start a
 * block, `<>&` are HTML-escaped (renderers pass raw HTML through), and newlines become spaces so a
 * value cannot break out of a table row or list item.
 */
export function escapeMarkdown(text: string, atBlockStart = true): string {
  const inline = text
    .replace(/[\r\n]+/g, ' ')
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
  if (!atBlockStart) return inline;
  return inline.replace(/^(\s*)([#+-]|\d+\.)/, (_, ws: string, m: string) => `${ws}${m.replace(/[#+\-.]/, (c) => `\\${c}`)}`);
}

/** Fixed decimals, or "n/a" for NaN/±∞ (undefined metrics must not look like zeros). */
export function fmt(x: number | undefined, digits = 3): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toFixed(digits);
}

export function fmtPct(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return `${(x * 100).toFixed(digits)} %`;
}

export function fmtInt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return Math.round(x).toLocaleString('en-US');
}

/**
 * ε is always shown rounded UP at the display precision: a report must never understate the privacy
 * loss (toFixed would round 1.2344 down to 1.234). The result is ≥ x.
 */
/** How a job without differential privacy is named wherever ε is shown (the audit uses the same words). */
export const NOT_DP = 'not differentially private (ε = ∞)';

export function fmtEpsilon(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return x === Infinity ? '∞' : 'n/a';
  return roundUpFixed(x, digits);
}

/** toFixed, then one step up at the last shown digit if the nearest rounding went below x. */
function roundUpFixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  if (Number(s) >= x) return s;
  return (Number(s) + 10 ** -digits).toFixed(digits);
}

/** δ in scientific notation (3 significant digits), rounded up as well: δ is a failure probability and understating it is the same error. */
export function fmtDelta(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '0';
  let s = x.toExponential(2);
  if (Number(s) < x) {
    const [m, e] = s.split('e');
    s = `${(Number(m) + 0.01).toFixed(2)}e${e}`;
    if (Number(s) < x) s = (x * (1 + 1e-12)).toExponential(2);
  }
  const [mant, exp] = s.split('e');
  return `${mant.replace(/\.?0+$/, '')}e${Number(exp)}`;
}

/** One-line description of a model spec object or string. */
export function describeModelSpec(spec: string | Record<string, unknown>): string {
  if (typeof spec === 'string') return spec;
  return Object.entries(spec)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

/** Last cumulative ε of a partner (0 before any round). */
export function finalEpsilon(epsilonByRound: readonly { round: number; epsilon: number }[]): number {
  let last = 0;
  let lastRound = -Infinity;
  for (const e of epsilonByRound) {
    if (e.round >= lastRound) {
      lastRound = e.round;
      last = e.epsilon;
    }
  }
  return last;
}
