import { MASKED_PART } from '../../src/federation/secagg/round-config.ts';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { planOf, type AnyWorkload } from '../../src/federation/workload.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { auditLedgers, formatAuditSummary, type AuditResult } from '../../src/privacy/ledger/audit.ts';
import type { LedgerEntry } from '../../src/privacy/ledger/entries.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import type { DemoSetup } from './setup.ts';

/** A ledger and its signed head pointer, copied together so the copy audits like the original. */
function copyLedger(from: string, to: string): void {
  copyFileSync(from, to);
  if (existsSync(`${from}.head`)) copyFileSync(`${from}.head`, `${to}.head`);
}

/** ε each partner had spent after each round, as recorded in the job ledger. */
function printEpsilonTable(entries: LedgerEntry[], manifest: JobManifest, say: (l: string) => void): void {
  const names = manifest.partners.map((p) => p.name);
  const nameOf = new Map(manifest.partners.map((p) => [p.keyId, p.name]));
  say('');
  say(`ε spent per partner after each round (cumulative, δ=${manifest.dp?.delta}; from the job ledger)`);
  say(['round', ...names].map((c) => c.padStart(10)).join(''));
  const last = new Map<string, number>();
  for (const e of entries) {
    if (e.type !== 'round') continue;
    for (const p of e.payload.partners) last.set(nameOf.get(p.partner) ?? p.partner, p.epsilonCumulative);
    say([String(e.payload.round), ...names.map((n) => (last.has(n) ? last.get(n)!.toFixed(3) : '—'))].map((c) => c.padStart(10)).join(''));
  }
}

/**
 * Bytes on the wire per uploaded value: the first accepted submission of a round that changes the
 * state (its parts' bytes from the coordinator log, over the plan's part lengths).
 */
export function readBytesPerValue(out: string, workload: AnyWorkload, manifest: JobManifest): number {
  const log = readFileSync(join(out, 'logs', 'coordinator.log'), 'utf8');
  for (const line of log.split('\n')) {
    if (!line.includes('"submission accepted"')) continue;
    let j: { round?: number; partBytes?: Record<string, number> };
    try {
      j = JSON.parse(line);
    } catch {
      continue; // not a JSON line
    }
    if (!j.round || !j.partBytes) continue;
    const plan = planOf(workload, manifest, j.round);
    if (!plan.updatesState) continue;
    // A masked upload is one part holding every part of the plan.
    if (j.partBytes[MASKED_PART] !== undefined) return j.partBytes[MASKED_PART] / plan.parts.reduce((s, p) => s + p.length, 0);
    const parts = plan.parts.filter((p) => p.use === 'state');
    const bytes = parts.reduce((s, p) => s + (j.partBytes![p.name] ?? NaN), 0);
    return bytes / parts.reduce((s, p) => s + p.length, 0);
  }
  return NaN;
}

/** Each partner's ε for the job, from its own budget store. */
export function partnerEpsilons(s: DemoSetup, out: string): Record<string, number> {
  const epsilon: Record<string, number> = {};
  if (s.plan)
    for (const name of s.names)
      epsilon[name] = BudgetStore.open(join(out, 'partners', name, 'state', 'privacy-budget.json')).jobEpsilon(s.manifest.jobId, s.plan.delta);
  return epsilon;
}

/** Stage 5: the coordinator's job ledger and each partner's own, copied next to the report and audited together. */
export function auditDemo(s: DemoSetup, out: string, say: (line: string) => void): { audit: AuditResult; entries: LedgerEntry[] } {
  const coordinatorLedger = join(out, 'coordinator.ledger.jsonl');
  copyLedger(join(out, 'coordinator', 'ledgers', `${s.manifest.jobId}.ledger.jsonl`), coordinatorLedger);
  const partnerLedgers = s.names.map((name) => {
    const dest = join(out, `${name}.ledger.jsonl`);
    copyLedger(join(out, 'partners', name, 'state', `${name}.ledger.jsonl`), dest);
    return dest;
  });
  const audit = auditLedgers({ coordinator: coordinatorLedger, partners: partnerLedgers, epsilonOf: composedEpsilon });
  const entries = readLedger(coordinatorLedger).entries;
  if (s.plan) printEpsilonTable(entries, s.manifest, say);
  say('');
  say(formatAuditSummary(audit));
  return { audit, entries };
}
