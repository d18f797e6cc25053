/**
 * Runs `fedmark score` (the real command, in this process) and reports on stderr the process's peak
 * resident memory and, when started with --expose-gc, the largest live heap seen right after a
 * forced collection every second (peak RSS also counts garbage V8 has not collected yet).
 */
import { Command } from 'commander';
import { registerScoreCommand } from '../../cli/score-command.ts';

const gc = (globalThis as { gc?: () => void }).gc;
let liveMax = 0;
const timer = gc
  ? setInterval(() => {
      gc();
      const m = process.memoryUsage();
      liveMax = Math.max(liveMax, m.heapUsed + m.external + m.arrayBuffers);
    }, 1000)
  : null;
timer?.unref();
const program = new Command();
registerScoreCommand(program);
await program.parseAsync(process.argv);
if (timer) clearInterval(timer);
process.stderr.write(`\nMAXRSS_KB ${process.resourceUsage().maxRSS}\nLIVE_MAX_BYTES ${liveMax}\n`);
