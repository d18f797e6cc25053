/**
 * What an attacker or an auditor observes in the attack tests — ledgers and budget files read as plain
 * JSON, bytes that crossed the wire (the lying proxy's records), and the CLI's output — with as little
 * of the library as possible, so the tests keep reading the same evidence while the code is restructured.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Exchange, LyingProxy } from '../helpers/lying-proxy.ts';
import { CLI_MAIN } from '../chaos/helpers.ts';
import type { AttackWorld } from './harness.ts';

const exec = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// What an auditor reads: ledgers and the budget file

export interface LedgerLine {
  seq: number;
  type: string;
  author: string;
  payload: Record<string, unknown>;
}

/** The ledger's entries, parsed line by line (no verification: the audit tests do that with the CLI). */
export function readLedgerLines(path: string): LedgerLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LedgerLine);
}

export interface RecordedCharge {
  round: number;
  attempt: number;
  /** What the charge bought (`update`, `weight`, `evaluation`, …) when the record says. */
  label: string | null;
  /** Whose charge it is, when the record says (coordinator ledgers record every partner's). */
  partner: string | null;
  /** The DP event: sampling rate q, noise multiplier σ, steps. */
  event: { samplingRate: number; noiseMultiplier: number; steps: number };
  delta: number | null;
}

type Ctx = { round?: number; attempt?: number; label?: string; partner?: string };

/** Every object nested in `value` that records a DP event (it names a noise multiplier). */
function dpRecords(value: unknown, inherited: Ctx = {}): (Record<string, unknown> & { _ctx: Ctx })[] {
  if (Array.isArray(value)) return value.flatMap((v) => dpRecords(v, inherited));
  if (!value || typeof value !== 'object') return [];
  const o = value as Record<string, unknown>;
  const ctx: Ctx = {
    round: typeof o.round === 'number' ? o.round : inherited.round,
    attempt: typeof o.attempt === 'number' ? o.attempt : inherited.attempt,
    label: typeof o.label === 'string' ? o.label : inherited.label,
    partner: typeof o.partner === 'string' ? o.partner : inherited.partner,
  };
  const own = typeof o.noiseMultiplier === 'number' ? [{ ...o, _ctx: ctx }] : [];
  return [...own, ...Object.values(o).flatMap((v) => dpRecords(v, ctx))];
}

const toCharge = (r: Record<string, unknown> & { _ctx: Ctx }): RecordedCharge => ({
  round: r._ctx.round ?? -1,
  attempt: r._ctx.attempt ?? 0,
  label: r._ctx.label ?? null,
  partner: r._ctx.partner ?? null,
  event: { samplingRate: Number(r.samplingRate), noiseMultiplier: Number(r.noiseMultiplier), steps: Number(r.steps) },
  delta: typeof r.delta === 'number' ? r.delta : null,
});

/** The charges a partner's budget file records for a job (today: `jobs[jobId].charges`). */
export function budgetCharges(budgetPath: string, jobId: string): RecordedCharge[] {
  if (!existsSync(budgetPath)) return [];
  const doc = JSON.parse(readFileSync(budgetPath, 'utf8')) as { jobs?: Record<string, unknown> };
  return dpRecords(doc.jobs?.[jobId] ?? {}).map(toCharge);
}

/**
 * The DP releases a ledger records for a job: every DP event, with a round, in an entry of the job
 * other than its manifest (optionally one partner's only).
 */
export function ledgerCharges(ledgerPath: string, jobId: string, partner?: string): RecordedCharge[] {
  return readLedgerLines(ledgerPath)
    .filter((e) => e.payload.jobId === jobId && e.type !== 'job.manifest')
    .flatMap((e) => dpRecords(e.payload))
    .map(toCharge)
    .filter((c) => c.round >= 0 && (!partner || c.partner === null || c.partner === partner));
}

/** Distinct (round, attempt) pairs of a list of charges: one per release. */
export function releasesOf(charges: RecordedCharge[]): string[] {
  return [...new Set(charges.map((c) => `${c.round}.${c.attempt}`))].sort();
}

/** The coordinator's job ledger file. */
export function jobLedgerPath(world: AttackWorld, jobId: string): string {
  return join(world.coordinator.dataDir, 'ledgers', `${jobId}.ledger.jsonl`);
}

// ---------------------------------------------------------------------------------------------
// What crossed the wire

export interface Upload {
  round: number;
  keyId: string;
  body: Buffer;
  exchange: Exchange;
}

/** Every update upload the proxy saw (optionally from one partner only), in order. */
export function uploads(world: AttackWorld, keyId?: string, proxy: LyingProxy = world.proxy): Upload[] {
  return proxy
    .requests({ method: 'PUT', path: /^\/v1\/jobs\/[^/]+\/rounds\/\d+\/submission$/, keyId })
    .map((x) => ({ round: Number(/rounds\/(\d+)\//.exec(x.request.path)![1]), keyId: x.request.headers['x-fedmark-key'], body: x.request.body, exchange: x }));
}

/** The acceptance answers a partner sent (`accepted` true or false) through `proxy`, in order. */
export function acceptances(world: AttackWorld, keyId: string, jobId?: string, proxy: LyingProxy = world.proxy): boolean[] {
  return proxy
    .requests({ method: 'POST', path: /^\/v1\/jobs\/[^/]+\/acceptance$/, keyId })
    .filter((x) => !jobId || x.request.path.startsWith(`/v1/jobs/${jobId}/`))
    .map((x) => (JSON.parse(x.request.body.toString('utf8')) as { accepted: boolean }).accepted);
}

// ---------------------------------------------------------------------------------------------
// The CLI, as a compliance reviewer runs it

export async function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', CLI_MAIN, ...args], { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The unencrypted metadata of an update envelope ("FMUP", version, u32 BE length, JSON): job, round, attempt, kind. */
export function uploadMeta(body: Uint8Array): {
  jobId: string;
  round: number;
  attempt: number;
  kind: string;
  parts: { name: string; bytes: number; length: number }[];
} {
  const b = Buffer.from(body);
  if (b.subarray(0, 4).toString('latin1') !== 'FMUP') throw new Error('not an update envelope');
  const len = b.readUInt32BE(5);
  return JSON.parse(b.subarray(9, 9 + len).toString('utf8'));
}

/** The parts of an update envelope, in order after its metadata (copies, on aligned buffers). */
export function uploadParts(body: Uint8Array): Record<string, Buffer> {
  const b = Buffer.from(body);
  const meta = uploadMeta(b);
  let offset = 9 + b.readUInt32BE(5);
  const out: Record<string, Buffer> = {};
  for (const p of meta.parts) {
    out[p.name] = Buffer.alloc(p.bytes); // never from the shared pool: offset 0, aligned
    b.copy(out[p.name], 0, offset, offset + p.bytes);
    offset += p.bytes;
  }
  return out;
}

/** A `plain-insecure` vector ("FMPL", u32 BE count, float64 LE values): what anyone on the path reads. */
export function readPlaintextVector(blob: Buffer): Float64Array | null {
  if (blob.length < 8 || blob.readUInt32BE(0) !== 0x464d504c) return null;
  const n = blob.readUInt32BE(4);
  return Float64Array.from({ length: n }, (_, i) => blob.readDoubleLE(8 + 8 * i));
}
