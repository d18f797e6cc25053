/**
 * Runs `fedmark score` (the real command, in this process) and reports the process's peak resident
 * memory on stderr, so the benchmark can compare peak memory across file sizes.
 */
import { Command } from 'commander';
import { registerScoreCommand } from '../../cli/score-command.ts';

const program = new Command();
registerScoreCommand(program);
await program.parseAsync(process.argv);
process.stderr.write(`\nMAXRSS_KB ${process.resourceUsage().maxRSS}\n`);
