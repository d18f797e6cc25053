import type { Command } from 'commander';
import { existsSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { FedmarkError } from '../src/errors.ts';
import { schemaHash } from '../src/federation/job-presets.ts';
import { PartnerLedger } from '../partner/ledger.ts';
import { assertTransportAllowed, loadCoordinatorTls } from '../coordinator/tls.ts';
import { buildScoringService } from '../src/scoring/serve/app.ts';
import { createServeAuth, loadTokenFile, readClientIdentities } from '../src/scoring/serve/auth.ts';
import { pendingWindows, ScoringSpool, sealWindow, type WindowInfo } from '../src/scoring/serve/spool.ts';
import { operatorName, prepareScoring, readWithdrawn, runId, setupOptions, type ScoringSetup } from './score-command.ts';
import { readIdList } from './node-commands.ts';

/** The spool directory of a partner's scoring service (pending, not yet sealed windows). */
export function spoolDir(stateDir: string): string {
  return join(stateDir, 'scoring-spool');
}

/** Seals every closed window in the spool into the ledger; windows that cannot be sealed now stay. */
export async function sealPending(dir: string, ledger: PartnerLedger, except: string | undefined, log: pino.Logger): Promise<number> {
  let sealed = 0;
  for (const file of pendingWindows(dir, except)) {
    try {
      const s = await sealWindow(file, {
        sidecarDir: ledger.sidecarDirectory,
        record: (w, sidecar) =>
          ledger.modelScoring({
            runId: w.info.windowId,
            mode: 'serve',
            modelHash: w.info.modelHash,
            modelKind: w.info.modelKind,
            ...(w.info.modelJobId ? { modelJobId: w.info.modelJobId } : {}),
            schemaHash: w.info.schemaHash,
            purpose: w.info.purpose,
            operator: w.info.operator,
            startedAt: w.startedAt!,
            finishedAt: w.finishedAt!,
            rowsRead: w.rowsScored + w.noConsent + w.withdrawn + w.rejected,
            rowsScored: w.rowsScored,
            rowsExcludedNoConsent: w.noConsent,
            rowsExcludedWithdrawn: w.withdrawn,
            rowsRejected: w.rejected,
            outputSha256: w.outputSha256,
            requests: w.requests,
            requesters: w.requesters.slice(0, 1000),
            ...(sidecar ? { sidecar } : {}),
          }),
      });
      if (s.requests)
        log.info({ window: s.info.windowId, requests: s.requests, scored: s.rowsScored, unreadable: s.unreadable }, 'scoring window sealed into the ledger');
      sealed++;
    } catch (err) {
      if (err instanceof FedmarkError && err.code === 'SPOOL_CORRUPT') {
        renameSync(file, `${file}.corrupt`);
        log.error({ file, err: err.message }, 'spool file is not a scoring window; moved aside');
        continue;
      }
      log.warn({ file, err: (err as Error).message }, 'could not seal scoring window yet; will retry');
    }
  }
  return sealed;
}

function windowInfo(setup: ScoringSetup, service: string, n: number, operator: string): WindowInfo {
  return {
    windowId: `${service}-w${String(n).padStart(5, '0')}`,
    modelHash: setup.model.modelHash,
    modelKind: setup.model.scorer.kind,
    modelJobId: setup.model.provenance.jobId,
    schemaHash: schemaHash(setup.schema),
    purpose: setup.purpose,
    operator,
  };
}

/** Re-reads the withdrawn-consent file when it changes (checked at most once a second). */
function withdrawnWatcher(file: string | undefined): () => ReadonlySet<string> {
  // The same Set object until the list changes: the service keeps one row encoder per Set.
  const none: ReadonlySet<string> = new Set();
  if (!file) return () => none;
  let ids = readWithdrawn(file);
  let mtime = statSync(file).mtimeMs;
  let checked = Date.now();
  return () => {
    if (Date.now() - checked >= 1000) {
      checked = Date.now();
      const m = existsSync(file) ? statSync(file).mtimeMs : -1;
      if (m !== mtime) {
        mtime = m;
        ids = readIdList(file);
      }
    }
    return ids;
  };
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'score one customer or a small batch over HTTP with the same code as `fedmark score`; authenticated, loopback by default, recorded in the ledger',
    )
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--schema <json>', 'the dataset schema the model was trained for')
    .requiredOption('--purpose <text>', "what the scores are for; must be the model's purpose and allowed by the policy")
    .requiredOption('--policy <file>', "the partner's privacy policy")
    .requiredOption('--identity <file>', "the partner node's identity (signs the ledger entries)")
    .requiredOption('--state-dir <dir>', "the partner node's state directory")
    .option('--token-file <file>', 'accept "Authorization: Bearer <token>" with the token in this file (mode 0600; created if missing)')
    .option('--client <identity...>', 'public identities (from `fedmark keys init`) allowed to send signed requests', [])
    .option('--withdrawn <file>', 'customer ids whose consent was withdrawn (re-read when it changes): never scored')
    .option('--host <host>', 'address to listen on (anything but loopback needs --tls-cert/--tls-key)', '127.0.0.1')
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate (see `fedmark keys cert`)')
    .option('--tls-key <pem>', 'private key of --tls-cert (mode 0600)')
    .option('--port <port>', 'port (0 = any free port)', '8480')
    .option('--max-batch <n>', 'most customers per request', '100')
    .option('--reasons <n>', 'default reason codes per customer', '3')
    .option('--seal-seconds <s>', 'how often the spooled requests are sealed into one ledger entry', '900')
    .option(
      '--durability <mode>',
      'when a request counts as recorded: fsync (before each response; survives power loss) or write (survives a crash of the service; fsynced every 20 ms)',
      'fsync',
    )
    .option('--baseline <spec>', 'what reasons are measured against: midpoint, zero, or a JSON file of a reference customer', 'midpoint')
    .option('--model-purpose <text>', 'purpose the model was trained for, when the model directory does not record it')
    .option('--operator <name>', 'who runs the service (recorded in the ledger; default: the OS user)')
    .option('--rate-limit <n>', 'requests per minute per client', '120000')
    .option('--log-level <level>', 'pino log level (one line per request at "info")', 'info')
    .action(async (o: Record<string, string | string[] | undefined>) => {
      const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      const sealSeconds = Number(s('sealSeconds'));
      if (!(sealSeconds > 0 && sealSeconds <= 86_400)) throw new FedmarkError('CLI_OPTION', '--seal-seconds must be in (0, 86400]');
      const durability = s('durability');
      if (durability !== 'fsync' && durability !== 'write') throw new FedmarkError('CLI_OPTION', '--durability must be "fsync" or "write"');
      const port = Number(s('port'));
      if (!(Number.isInteger(port) && port >= 0 && port <= 65_535)) throw new FedmarkError('CLI_OPTION', `--port must be 0..65535, got ${s('port')}`);
      // Scores are customer data: plain HTTP on loopback only, HTTPS anywhere else.
      if (Boolean(s('tlsCert')) !== Boolean(s('tlsKey'))) throw new FedmarkError('TLS_OPTIONS', '--tls-cert and --tls-key go together');
      const tls = s('tlsCert') && s('tlsKey') ? loadCoordinatorTls({ certFile: s('tlsCert')!, keyFile: s('tlsKey')!, host: s('host') }) : undefined;
      assertTransportAllowed(s('host')!, tls);
      const setup = await prepareScoring(setupOptions(s));
      const auth = createServeAuth({
        token: s('tokenFile') ? loadTokenFile(s('tokenFile')!, { create: true }) : undefined,
        clients: readClientIdentities((o.client as string[] | undefined) ?? []),
      });
      const logger = pino({ level: s('logLevel')! }, pino.destination(2));
      const operator = operatorName(s('operator'));
      const ledger = PartnerLedger.open(setup.ledgerPath, setup.identity, s('stateDir')!);
      const dir = spoolDir(s('stateDir')!);
      const service = runId('serve', new Date());
      let windowNo = 1;
      // A crash earlier may have left windows: they are sealed before anything new is answered.
      await sealPending(dir, ledger, undefined, logger);
      const spool = ScoringSpool.open(dir, windowInfo(setup, service, windowNo, operator), { durability });
      const app = await buildScoringService({
        model: setup.model,
        schema: setup.schema,
        purpose: setup.purpose,
        auth,
        record: (r) => spool.append(r),
        hashId: (id) => ledger.idHash(id),
        withdrawn: withdrawnWatcher(s('withdrawn')),
        maxBatch: Number(s('maxBatch')),
        reasons: Number(s('reasons')),
        rateLimitPerMinute: Number(s('rateLimit')),
        logger,
        https: tls && { key: tls.key, cert: tls.cert },
      });
      const seal = async (): Promise<void> => {
        const closed = await spool.rotate(windowInfo(setup, service, ++windowNo, operator));
        await sealPending(dir, ledger, spool.currentFile, logger);
        void closed;
      };
      const timer = setInterval(() => void seal().catch((err) => logger.error({ err: (err as Error).message }, 'sealing failed')), sealSeconds * 1000);
      timer.unref();
      const address = await app.listen({ host: s('host')!, port });
      process.stdout.write(
        `fedmark serve listening on ${address} (model ${setup.model.modelHash.slice(0, 12)}…, purpose "${setup.purpose}", auth: ${auth.describe()}; OpenAPI at ${address}/docs)\n`,
      );
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        clearInterval(timer);
        await app.close();
        const last = await spool.close();
        await sealPending(dir, ledger, undefined, logger);
        void last;
        ledger.close();
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
    });
}
