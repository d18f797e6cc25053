import { escapeHtml } from '../format.ts';

export interface TableOptions {
  numeric?: boolean[];
  /** Columns shown in a monospace font (key ids). */
  mono?: boolean[];
  rowClass?: (i: number) => string;
  /** Cells are pre-built HTML, assembled by the caller from escaped parts. */
  raw?: boolean;
}

export function table(head: string[], rows: string[][], opts: TableOptions = {}): string {
  const cell = (c: string) => (opts.raw ? c : escapeHtml(c));
  const cls = (i: number) => (opts.numeric?.[i] ? ' class="num"' : opts.mono?.[i] ? ' class="mono"' : '');
  return `<div class="table-wrap"><table><thead><tr>${head.map((h, i) => `<th${cls(i)}>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r, ri) => {
      const rc = opts.rowClass?.(ri);
      return `<tr${rc ? ` class="${rc}"` : ''}>${r.map((c, i) => `<td${cls(i)}>${cell(c)}</td>`).join('')}</tr>`;
    })
    .join('')}</tbody></table></div>`;
}

export function pill(kind: 'ok' | 'warn' | 'bad' | 'na', text: string): string {
  return `<span class="pill ${kind}">${escapeHtml(text)}</span>`;
}
