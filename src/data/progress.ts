/**
 * Progress of a long load on the terminal: a cli-progress bar on stderr when it is a TTY, otherwise
 * (logs, CI, systemd) a plain line every `intervalMs`. Nothing is printed for loads that finish
 * within `delayMs`, so small files stay quiet.
 */
import cliProgress from 'cli-progress';
import type { LoadProgress } from './dataset.ts';

export interface ProgressReporter {
  onProgress(progress: LoadProgress): void;
  /** Ends the bar (call when the load ended, successfully or not). */
  stop(): void;
}

export interface TerminalProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Force the bar (true) or plain lines (false); default: the bar when the stream is a TTY. */
  tty?: boolean;
  /** Plain mode: one line at most this often. Default 10 s. */
  intervalMs?: number;
  /** Nothing is shown before this much time has passed. Default 1 s. */
  delayMs?: number;
  now?: () => number;
}

const MB = 1024 * 1024;

function amount(done: number, unit: LoadProgress['unit']): string {
  if (unit === 'rows') return `${done.toLocaleString('en-US')} rows`;
  return done < MB ? `${(done / 1024).toFixed(0)} KiB` : `${(done / MB).toFixed(0)} MiB`;
}

export function terminalProgress(options: TerminalProgressOptions = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? Boolean(stream.isTTY);
  const intervalMs = options.intervalMs ?? 10_000;
  const delayMs = options.delayMs ?? 1000;
  const now = options.now ?? Date.now;
  const started = now();
  let bar: cliProgress.SingleBar | null = null;
  let lastLine = started;

  return {
    onProgress(p) {
      const t = now();
      if (t - started < delayMs) return;
      const rows = p.rows.toLocaleString('en-US');
      if (tty) {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            { format: 'loading {source} [{bar}] {percentage}% | {rows} rows | ETA {eta_formatted}', stream, hideCursor: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.total ?? p.done, p.done, { source: p.source, rows });
        }
        if (p.total === null) bar.setTotal(p.done);
        bar.update(p.done, { rows });
        return;
      }
      if (t - lastLine < intervalMs) return;
      lastLine = t;
      const share = p.total ? `${((100 * p.done) / p.total).toFixed(0)}% (${amount(p.done, p.unit)} of ${amount(p.total, p.unit)}), ` : '';
      stream.write(`fedmark: loading ${p.source}: ${share}${rows} rows read, ${((t - started) / 1000).toFixed(0)} s\n`);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
