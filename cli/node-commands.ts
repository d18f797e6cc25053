import type { Command } from 'commander';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator, REDACT_PATHS } from '../coordinator/server.ts';
import { keyId, readIdentityFile } from '../src/crypto/identity.ts';
import { assertStoreCoversLedger } from '../src/privacy/budget/reconcile.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { loadSchema } from '../src/data/schema.ts';
import { parseBadRowLimit } from '../src/data/bad-rows.ts';
import { resolveDataSource } from '../src/data/sources/index.ts';
import { loadPolicy } from '../src/privacy/policy.ts';
import { BudgetStore } from '../src/privacy/budget/store.ts';
import { schemaHash } from '../src/federation/job-presets.ts';
import { runPartnerNode } from '../partner/node.ts';
import { policyReview, type OfficerApproval } from '../partner/policy-review.ts';
import { PolicyBudgetGuard } from '../src/privacy/budget/policy-guard.ts';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { loadPartnerData } from './partner-data.ts';
import { FedmarkError } from '../src/errors.ts';
import { assertTransportAllowed, loadCoordinatorTls } from '../coordinator/tls.ts';
import { loadClientTls, trustCoordinator } from '../src/transport/tls-client.ts';
import { DirLock } from '../src/util/dir-lock.ts';
import { STORE_ENV } from '../coordinator/sql/open.ts';
import { listenOrExplain, onStopSignal, signalExitCode } from './process-control.ts';

export function registerNodeCommands(program: Command): void {
  program
    .command('coordinator')
    .description('run the coordinator: routes encrypted updates, never holds a key')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '8470')
    .requiredOption('--data-dir <dir>', 'where the coordinator key, the ledgers and (by default) the SQLite store live')
    .option(
      '--store <url>',
      `keep the store in PostgreSQL (postgres://user@host:port/database) instead of <data-dir>/coordinator.sqlite; default: $${STORE_ENV}`,
    )
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--log-requests', 'log every request as fastify does (two info lines each); default: refusals only at info, the rest at debug', false)
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate (required off loopback; see `fedmark keys cert`)')
    .option('--tls-key <pem>', 'private key of --tls-cert (mode 0600)')
    .option('--min-free-mb <mb>', 'free space under --data-dir below which /health says not ok and a warning is logged', '256')
    .action(
      async (o: {
        host: string;
        port: string;
        dataDir: string;
        store?: string;
        logLevel: string;
        logRequests: boolean;
        tlsCert?: string;
        tlsKey?: string;
        minFreeMb: string;
      }) => {
        if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new FedmarkError('TLS_OPTIONS', '--tls-cert and --tls-key go together');
        const tls = o.tlsCert && o.tlsKey ? loadCoordinatorTls({ certFile: o.tlsCert, keyFile: o.tlsKey, host: o.host }) : undefined;
        assertTransportAllowed(o.host, tls);
        const logger = pino({ level: o.logLevel, redact: REDACT_PATHS });
        const minFreeMb = Number(o.minFreeMb);
        if (!(minFreeMb >= 0)) throw new FedmarkError('CLI_BAD_NUMBER', `--min-free-mb must be a number of MiB >= 0, got "${o.minFreeMb}"`);
        const { app, keyId: coordinatorKeyId } = await buildCoordinator({
          dataDir: o.dataDir,
          store: o.store ?? (process.env[STORE_ENV] || undefined),
          logger,
          https: tls && { key: tls.key, cert: tls.cert },
          minFreeBytes: minFreeMb * 1024 * 1024,
          requestLogging: o.logRequests ? 'full' : 'quiet',
        });
        const address = await listenOrExplain(app, o.host, Number(o.port));
        if (tls) logger.info({ certSha256: tls.sha256, notAfter: tls.notAfter.toISOString(), names: tls.names }, 'serving HTTPS');
        else logger.warn('serving plain HTTP on loopback only');
        // Partners and owners pin this key id (--coordinator-key-id).
        process.stdout.write(`fedmark coordinator listening on ${address} (coordinator key id ${coordinatorKeyId})\n`);
        onStopSignal(async (signal) => {
          logger.info({ signal }, 'stopping: finishing open requests, closing the store and ledgers');
          await app.close();
        });
      },
    );

  program
    .command('partner')
    .alias('client')
    .description("run a data partner's node for one job: trains locally, sends only encrypted updates")
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--data <source>', 'local data: a CSV or Parquet file, a directory of Parquet files, or a postgres:// URL with --table or --query')
    .option('--table <name>', 'with a postgres:// --data: the table or view to read (only the declared columns are selected)')
    .option('--query <sql>', "with a postgres:// --data: a SELECT whose result columns are the schema's")
    .option('--data-format <format>', 'csv or parquet, when the file name does not say')
    .option('--max-bad-rows <limit>', 'fail when more rows have bad values: a count (250), a share (0.5%) or all', '1%')
    .requiredOption('--schema <json>', 'dataset schema file')
    .requiredOption('--identity <file>', 'identity file (mode 0600)')
    .requiredOption('--policy <file>', 'local privacy policy file')
    .requiredOption('--state-dir <dir>', "the node's persistent state (privacy budget, ledger)")
    .option('--holdout <fraction>', 'share of local rows kept for federated evaluation', '0.2')
    .option('--split-seed <n>', 'seed of the local train/hold-out split', '7')
    .option('--poll-ms <ms>', 'how often to poll a coordinator without long-polling, and while joining', '200')
    .option('--long-poll-ms <ms>', 'how long one long-poll of the job status may be held (capped by the coordinator); 0: poll every --poll-ms', '20000')
    .option('--approvals <file>', "officers' approvals of the job (JSON array from fedmark approve), when the policy requires two-person approval")
    .option('--withdrawn <file>', 'customer ids whose consent was withdrawn (one per line): excluded from every later round')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--ca <pem>', "trust the coordinator's certificate only if this CA issued it (instead of the system store)")
    .option('--pin-sha256 <hex>', "trust the coordinator's certificate only if its SHA-256 fingerprint is this (works for self-signed)")
    .option(
      '--owner-key-id <keyid>',
      "work only for this job owner's key (or list trusted owners in the policy's trustedOwnerKeyIds; one of the two is required)",
    )
    .option('--coordinator-key-id <keyid>', 'work only with the coordinator that proves it holds this key (its `fedmark coordinator` key id)')
    .option('--join-timeout <seconds>', 'how long to wait for the coordinator and for the job to be registered', '600')
    .option('--key-timeout <seconds>', "how long to wait for the job key from the owner's key ceremony", '1800')
    .option('--outage-limit <seconds>', 'how long to ride out a coordinator that cannot be reached mid-job (capped exponential backoff with jitter)', '600')
    .option(
      '--leave-on-stop',
      'on SIGTERM/SIGINT tell the coordinator this node left the job for good, so rounds stop waiting for it (default: a signal is a pause, and a restart resumes the job)',
      false,
    )
    .action(async (o: Record<string, string>) => {
      const coordinatorUrl = o.coordinator.replace(/\/$/, '');
      // Before anything else: refuse plain HTTP off loopback, and check the CA file and pin.
      trustCoordinator(coordinatorUrl, loadClientTls({ caFile: o.ca, pinSha256: o.pinSha256 }));
      const logger = pino({ level: o.logLevel, redact: REDACT_PATHS });
      const identity = await readIdentityFile(o.identity);
      const schema = await loadSchema(o.schema);
      const policy = await loadPolicy(o.policy);
      const ownerKeyId = o.ownerKeyId === undefined ? undefined : keyIdOption('--owner-key-id', o.ownerKeyId);
      const coordinatorKeyId = o.coordinatorKeyId === undefined ? undefined : keyIdOption('--coordinator-key-id', o.coordinatorKeyId);
      if (!ownerKeyId && !policy.trustedOwnerKeyIds) {
        throw new FedmarkError(
          'NO_TRUSTED_OWNER',
          `${o.policy}: this node would work for whoever registers job "${o.job}" first — pin its owner with --owner-key-id KEYID, or list trusted owners in the policy's "trustedOwnerKeyIds"`,
        );
      }
      const seconds = (flag: string, v: string) => {
        const n = Number(v);
        if (!(n > 0)) throw new FedmarkError('CLI_BAD_NUMBER', `${flag} must be a positive number of seconds, got "${v}"`);
        return n * 1000;
      };
      const joinTimeout = seconds('--join-timeout', o.joinTimeout) / 1000;
      const keyTimeoutMs = seconds('--key-timeout', o.keyTimeout);
      const outageLimitMs = seconds('--outage-limit', o.outageLimit);
      mkdirSync(o.stateDir, { recursive: true });
      // One node per state directory (its ledger and budget have one writer); freed at exit.
      DirLock.acquire(o.stateDir, `fedmark partner --job ${o.job}`);
      // A signal is a pause by default: a supervisor's restart (systemctl restart sends SIGTERM) must
      // not take the partner out of the job. With --leave-on-stop a stop mid-job leaves it for good
      // (an attested `leave`, so rounds stop waiting for this node), given a few seconds, then exits.
      const leaveOnStop = (o as { leaveOnStop?: unknown }).leaveOnStop === true;
      const stopped = new AbortController();
      let node: Promise<unknown> = Promise.resolve();
      onStopSignal(async (signal) => {
        if (!leaveOnStop) return;
        stopped.abort(new Error(signal));
        await Promise.race([node.catch(() => undefined), new Promise((r) => setTimeout(r, 8000))]);
      }, signalExitCode);
      const ledgerPath = join(o.stateDir, `${identity.name}.ledger.jsonl`);
      const budget = BudgetStore.open(join(o.stateDir, 'privacy-budget.json'));
      // A deleted, replaced or edited store must not hand out the ε this node's own ledger records as spent.
      if (existsSync(ledgerPath)) assertStoreCoversLedger(budget, readLedger(ledgerPath).entries, keyId(identity.signPublicKey), ledgerPath);
      const source = resolveDataSource({ data: o.data, table: o.table, query: o.query, format: o.dataFormat as 'csv' | 'parquet' | undefined });
      const data = await loadPartnerData(source, schema, Number(o.holdout), Number(o.splitSeed), undefined, {
        maxBadRows: parseBadRowLimit(o.maxBadRows),
        terminal: true,
      });
      logger.info(
        {
          rows: data.all.n,
          train: data.train.n,
          test: data.test.n,
          stats: { excludedNoConsent: data.all.stats.excludedNoConsent, badRows: data.all.stats.badRowCount },
        },
        'local data loaded',
      );
      const running = runPartnerNode({
        coordinatorUrl,
        signal: stopped.signal,
        leaveOnStop,
        identity,
        jobId: o.job,
        train: data.train,
        test: data.test,
        schemaHash: schemaHash(schema),
        stateDir: o.stateDir,
        reviewJob: (m) => policyReview(policy, m, data.all.n, budget, o.approvals ? readApprovals(o.approvals) : []),
        withdrawnIds: o.withdrawn ? () => readIdList(o.withdrawn) : undefined,
        budget: new PolicyBudgetGuard(policy, budget),
        policyLimits: (m) => ({
          maxEpsilon: policy.maxEpsilonPerJob,
          maxDelta: policy.maxDelta,
          remainingLifetimeEpsilon: Math.max(0, policy.lifetimeEpsilon - budget.lifetimeEpsilon(policy.datasetId, m.dp?.delta ?? policy.maxDelta)),
          allowedPurposes: policy.allowedPurposes,
          allowedColumns: policy.allowedColumns,
          ...(policy.maxRounds !== undefined ? { maxRounds: policy.maxRounds } : {}),
        }),
        ledgerPath,
        log: logger,
        pollMs: Number(o.pollMs),
        longPollMs: longPollMsOf(o.longPollMs),
        joinTimeoutMs: joinTimeout * 1000,
        keyTimeoutMs,
        outageLimitMs,
        onWaiting: (m) => process.stderr.write(`fedmark partner: ${m}\n`),
        ownerKeyId,
        coordinatorKeyId,
      });
      node = running;
      // Stopped by a signal: its handler sends the leave and exits 143/130; the abort is no error to report.
      const result = await running.catch((err: unknown) => (stopped.signal.aborted ? new Promise<never>(() => undefined) : Promise.reject(err)));
      process.stdout.write(`${JSON.stringify({ state: result.state, reason: result.reason, rounds: result.rounds, modelHash: result.modelHash })}\n`);
      process.exit(result.state === 'completed' ? 0 : 3);
    });
}

/** A key id given on the command line (32 hex characters, as `fedmark keys init` prints it). */
export function keyIdOption(flag: string, value: string): string {
  if (!/^[0-9a-f]{32}$/.test(value))
    throw new FedmarkError('CLI_BAD_KEY_ID', `${flag} must be a 32-hex-character key id (as \`fedmark keys init\` prints it), got "${value}"`);
  return value;
}

function readApprovals(path: string): OfficerApproval[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedmarkError('APPROVALS_UNREADABLE', `approvals file ${path}: ${(err as Error).message}`);
  }
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((a, i) => {
    const x = a as Partial<OfficerApproval>;
    if (typeof x.officer !== 'string' || typeof x.signature !== 'string') {
      throw new FedmarkError('APPROVALS_INVALID', `approvals file ${path}: entry ${i} needs "officer" and "signature" strings`);
    }
    return { officer: x.officer, signature: x.signature };
  });
}

/** Re-read before every round, so a withdrawal takes effect from the next round on. */
export function readIdList(path: string): Set<string> {
  if (!existsSync(path)) return new Set();
  return new Set(
    readFileSync(path, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean),
  );
}

/** `--long-poll-ms`: a whole number of milliseconds, 0 for interval polling only. */
function longPollMsOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new FedmarkError('CLI_BAD_NUMBER', `--long-poll-ms must be a whole number of milliseconds >= 0, got "${v}"`);
  return n;
}
