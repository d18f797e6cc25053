/**
 * The audit: everything a compliance reviewer can recompute from ledgers alone.
 *
 * 1. Integrity of every ledger (verify.ts): chain, sequence, signatures, authorship, head pointer.
 * 2. Privacy accounting: each partner's ε is recomputed from the DP parameters recorded per round
 *    (sampling rate q, noise multiplier σ, steps) with the injected accountant `epsilonOf`; any
 *    recorded ε *below* the recomputed value is flagged. Overstating ε is conservative and allowed.
 * 3. Policy: no partner may exceed the limits it declared in its acceptance (ε, δ, rounds, minimum
 *    noise, purposes, columns), nor take part without acceptance, after refusing, after withdrawing
 *    or after a budget refusal; no round may follow a job halt.
 * 4. Cross-checks: each partner's local ledger must agree with the coordinator's (acceptance and
 *    manifest hash, rounds, DP parameters, ciphertext hashes, ε, model hashes, consent counts), and
 *    every coordinator-head witness a partner recorded must still be in the coordinator ledger.
 */
import path from 'node:path';
import { canonicalJson } from './canonical.ts';
import { parsePayload, type EntryType, type LedgerEntry, type PayloadOf, type PolicyLimits } from './entries.ts';
import { readLedger, type ReadLedgerResult } from './reader.ts';
import { entryHash } from './signing.ts';
import { verifyLedger, type KeyRing, type LedgerFinding, type Severity } from './verify.ts';

export interface DpEvent {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
}

/** ε after composing `events` (in order) at `delta`; the lead wires in privacy/accountant.ts. */
export type EpsilonOf = (events: DpEvent[], delta: number) => number;

export type LedgerInput = string | LedgerEntry[] | ReadLedgerResult;

export interface AuditOptions {
  coordinator: LedgerInput;
  partners?: LedgerInput[];
  epsilonOf: EpsilonOf;
  /** The job may still be running: a missing `model.final`/`job.halt` is a warning, not an error. */
  allowRunning?: boolean;
  /** If given, the job owner's key id must be one of these. */
  trustedOwnerKeys?: string[];
  /** Relative tolerance when comparing recorded and recomputed ε (float noise only). Default 1e-9. */
  epsilonTolerance?: number;
}

export type PartnerStatus = 'accepted' | 'refused' | 'withdrawn' | 'no-response';

export interface PartnerSummary {
  partner: string;
  name: string;
  status: PartnerStatus;
  /** Rounds in which the partner charged its accountant. */
  rounds: number;
  rowsUsed: number | null;
  rowsWithoutConsent: number | null;
  /** max(recorded, recomputed): never reported lower than either. */
  epsilon: number;
  epsilonRecorded: number;
  epsilonRecomputed: number | null;
  delta: number | null;
  /** min(maxEpsilon, remainingLifetimeEpsilon) from the acceptance, if any. */
  epsilonLimit: number | null;
  budgetLeft: number | null;
  localLedgerChecked: boolean;
}

export type AuditFinding = LedgerFinding;

export interface AuditResult {
  ok: boolean;
  jobId: string | null;
  findings: AuditFinding[];
  partners: PartnerSummary[];
  ledgers: { name: string; entries: number; ok: boolean }[];
}

interface Loaded {
  name: string;
  read: ReadLedgerResult | LedgerEntry[];
}

function load(input: LedgerInput, fallbackName: string): Loaded {
  if (typeof input === 'string') return { name: input, read: readLedger(input) };
  if (Array.isArray(input)) return { name: fallbackName, read: input };
  return { name: input.path, read: input };
}

/** Typed payloads of the entries whose payload validated, in seq order. */
function typed(entries: LedgerEntry[], valid: Set<number>) {
  return entries
    .filter((e) => valid.has(e.seq))
    .map((e) => ({ entry: e, payload: parsePayload(e.type, e.payload, e.schemaVersion).data as unknown }))
    .map(({ entry, payload }) => ({ seq: entry.seq, type: entry.type, payload, entry }));
}
type Typed = ReturnType<typeof typed>[number];
function ofType<T extends EntryType>(list: Typed[], t: T): { seq: number; payload: PayloadOf<T>; entry: LedgerEntry }[] {
  return list.filter((x) => x.type === t) as unknown as { seq: number; payload: PayloadOf<T>; entry: LedgerEntry }[];
}

/** "recorded < recomputed" beyond float noise. */
function understated(recorded: number, recomputed: number, tol: number): boolean {
  return recorded < recomputed * (1 - tol) - 1e-12;
}
function limitOf(policy: PolicyLimits | undefined): number | null {
  if (!policy) return null;
  return policy.remainingLifetimeEpsilon !== undefined ? Math.min(policy.maxEpsilon, policy.remainingLifetimeEpsilon) : policy.maxEpsilon;
}
const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(6));

interface PartnerState {
  keyId: string;
  name: string;
  status: PartnerStatus;
  responseSeq?: number;
  policy?: PolicyLimits;
  manifestHash?: string;
  withdrawAfterRound?: number;
  budgetRefusedRounds: Set<number>;
  events: DpEvent[];
  rounds: Map<number, { seq: number; rec: PayloadOf<'round'>['partners'][number]; round: PayloadOf<'round'> }>;
  epsilonRecorded: number;
  epsilonRecomputed: number | null;
  delta: number | null;
  consent?: { seq: number; payload: PayloadOf<'consent.usage'> };
  /** Consent counts found only in the partner's local ledger. */
  localConsent?: { seq: number; payload: PayloadOf<'consent.usage'> };
}

interface JobAnalysis {
  jobId: string | null;
  manifestSeq0: LedgerEntry | null;
  partners: Map<string, PartnerState>;
  roundsBySeq: { seq: number; payload: PayloadOf<'round'> }[];
  final?: { seq: number; payload: PayloadOf<'model.final'> };
}

/** Semantic checks and ε recomputation over a verified job ledger. */
function analyzeJob(
  entries: LedgerEntry[],
  ring: KeyRing,
  valid: Set<number>,
  epsilonOf: EpsilonOf | null,
  tol: number,
  add: (f: Omit<LedgerFinding, 'ledger'>) => void,
  allowRunning: boolean,
): JobAnalysis {
  const list = typed(entries, valid);
  const manifest = ofType(list, 'job.manifest').find((m) => m.seq === 0);
  const out: JobAnalysis = { jobId: ring.jobId ?? null, manifestSeq0: manifest?.entry ?? null, partners: new Map(), roundsBySeq: [] };
  if (!manifest) return out;
  const m = manifest.payload;
  for (const p of m.partners) {
    out.partners.set(p.keyId, {
      keyId: p.keyId,
      name: p.name,
      status: 'no-response',
      budgetRefusedRounds: new Set(),
      events: [],
      rounds: new Map(),
      epsilonRecorded: 0,
      epsilonRecomputed: epsilonOf ? 0 : null,
      delta: null,
    });
  }
  const anchor = entryHash(manifest.entry);
  let halted: { seq: number; afterRound: number } | null = null;
  let lastRound = 0;
  const seenCiphertexts = new Map<string, number>();
  const err = (seq: number, code: string, message: string, severity: Severity = 'error'): void => add({ seq, code, message, severity });

  for (const item of list) {
    const { seq } = item;
    switch (item.type) {
      case 'partner.acceptance':
      case 'partner.refusal': {
        const p = item.payload as PayloadOf<'partner.acceptance'> | PayloadOf<'partner.refusal'>;
        const st = out.partners.get(p.partner);
        if (!st) break; // UNKNOWN_PARTNER already reported by verify
        if (st.status !== 'no-response') {
          err(seq, 'DUPLICATE_RESPONSE', `partner ${st.name} answered the job twice (first at seq ${st.responseSeq})`, 'warning');
          break;
        }
        if (p.manifestHash !== anchor) {
          err(seq, 'ACCEPTANCE_MANIFEST_MISMATCH', `partner ${st.name}'s ${item.type === 'partner.acceptance' ? 'acceptance' : 'refusal'} names manifest ${p.manifestHash.slice(0, 12)}…, not this ledger's manifest entry ${anchor.slice(0, 12)}…`);
        }
        st.status = item.type === 'partner.acceptance' ? 'accepted' : 'refused';
        st.responseSeq = seq;
        st.manifestHash = p.manifestHash;
        st.policy = p.policy;
        if (item.type === 'partner.acceptance' && p.policy) {
          const pol = p.policy;
          if (m.dp && m.dp.delta > pol.maxDelta) err(seq, 'POLICY_DELTA_EXCEEDED', `partner ${st.name} accepted δ=${m.dp.delta} above its own limit ${pol.maxDelta}`);
          const lim = limitOf(pol)!;
          if (m.dp && m.dp.targetEpsilon > lim) err(seq, 'POLICY_EPSILON_EXCEEDED', `partner ${st.name} accepted target ε=${m.dp.targetEpsilon} above its limit ${lim}`);
          if (pol.maxRounds !== undefined && m.rounds > pol.maxRounds) err(seq, 'POLICY_ROUNDS_EXCEEDED', `partner ${st.name} accepted ${m.rounds} rounds, above its limit ${pol.maxRounds}`, 'warning');
          if (pol.allowedPurposes && !pol.allowedPurposes.includes(m.purpose)) err(seq, 'POLICY_PURPOSE', `partner ${st.name} does not allow purpose "${m.purpose}"`);
          if (pol.allowedColumns) {
            const bad = m.columns.filter((c) => !pol.allowedColumns!.includes(c));
            if (bad.length) err(seq, 'POLICY_COLUMNS', `partner ${st.name} does not allow column(s) ${bad.join(', ')}`);
          }
          if (typeof m.dp?.noiseMultiplier === 'number' && pol.minNoiseMultiplier !== undefined && m.dp.noiseMultiplier < pol.minNoiseMultiplier) {
            err(seq, 'POLICY_NOISE_TOO_LOW', `partner ${st.name} accepted σ=${m.dp.noiseMultiplier} below its minimum ${pol.minNoiseMultiplier}`);
          }
        }
        break;
      }
      case 'partner.withdraw': {
        const p = item.payload as PayloadOf<'partner.withdraw'>;
        const st = out.partners.get(p.partner);
        if (!st) break;
        st.status = 'withdrawn';
        st.withdrawAfterRound = p.afterRound;
        break;
      }
      case 'budget.refusal': {
        const p = item.payload as PayloadOf<'budget.refusal'>;
        const st = out.partners.get(p.partner);
        if (st && p.round !== undefined) st.budgetRefusedRounds.add(p.round);
        break;
      }
      case 'consent.usage': {
        const p = item.payload as PayloadOf<'consent.usage'>;
        const st = out.partners.get(p.partner);
        if (!st) break;
        if (st.consent) err(seq, 'DUPLICATE_CONSENT_RECORD', `partner ${st.name}'s consent counts recorded twice (also seq ${st.consent.seq})`, 'warning');
        st.consent = { seq, payload: p };
        break;
      }
      case 'job.halt': {
        const p = item.payload as PayloadOf<'job.halt'>;
        if (!halted) halted = { seq, afterRound: p.afterRound };
        break;
      }
      case 'model.final': {
        const p = item.payload as PayloadOf<'model.final'>;
        if (out.final) err(seq, 'DUPLICATE_FINAL', `second model.final (first at seq ${out.final.seq})`);
        else out.final = { seq, payload: p };
        break;
      }
      case 'round': {
        const r = item.payload as PayloadOf<'round'>;
        out.roundsBySeq.push({ seq, payload: r });
        if (r.round <= lastRound) err(seq, 'ROUND_OUT_OF_ORDER', `round ${r.round} recorded after round ${lastRound}`);
        lastRound = Math.max(lastRound, r.round);
        if (r.round > m.rounds) err(seq, 'ROUND_BEYOND_MANIFEST', `round ${r.round} exceeds the manifest's ${m.rounds} rounds`);
        if (halted) err(seq, 'ROUND_AFTER_HALT', `round ${r.round} recorded after the job was halted at seq ${halted.seq}`);
        if (out.final) err(seq, 'ROUND_AFTER_FINAL', `round ${r.round} recorded after the final model (seq ${out.final.seq})`);
        const selected = new Set(r.selected);
        const submitted = new Set(r.submitted);
        for (const k of [...r.selected, ...r.submitted, ...r.dropped]) {
          if (!out.partners.has(k)) err(seq, 'UNKNOWN_PARTNER', `round ${r.round} names ${k}, who is not a partner`);
        }
        for (const k of r.submitted) if (!selected.has(k)) err(seq, 'SUBMITTED_NOT_SELECTED', `round ${r.round}: ${k} submitted without being selected`);
        for (const k of r.dropped) {
          if (!selected.has(k)) err(seq, 'ROUND_SETS_INCONSISTENT', `round ${r.round}: ${k} dropped without being selected`);
          if (submitted.has(k)) err(seq, 'ROUND_SETS_INCONSISTENT', `round ${r.round}: ${k} both submitted and dropped`);
        }
        if (m.partnersPerRound !== undefined && r.selected.length > m.partnersPerRound) {
          err(seq, 'TOO_MANY_SELECTED', `round ${r.round} selected ${r.selected.length} partners, manifest allows ${m.partnersPerRound}`, 'warning');
        }
        if (m.quorum !== undefined && r.submitted.length < m.quorum) {
          err(seq, 'QUORUM_NOT_MET', `round ${r.round} closed with ${r.submitted.length} submissions, quorum is ${m.quorum}`);
        }
        const recorded = new Set(r.partners.map((x) => x.partner));
        if (m.dp) for (const k of r.submitted) if (!recorded.has(k)) err(seq, 'DP_RECORD_MISSING', `round ${r.round}: ${k} submitted but no DP parameters / ε are recorded for it`);
        for (const rec of r.partners) {
          const st = out.partners.get(rec.partner);
          if (!st) continue;
          if (!selected.has(rec.partner)) err(seq, 'DP_RECORD_NOT_SELECTED', `round ${r.round}: ε recorded for ${st.name}, who was not selected`);
          if (st.rounds.has(r.round)) err(seq, 'DUPLICATE_PARTICIPATION', `round ${r.round}: ${st.name} recorded twice`);
          if (st.status === 'no-response') err(seq, 'PARTICIPATION_WITHOUT_ACCEPTANCE', `round ${r.round}: ${st.name} took part without an acceptance`);
          if (st.status === 'refused') err(seq, 'PARTICIPATION_AFTER_REFUSAL', `round ${r.round}: ${st.name} took part after refusing the job (seq ${st.responseSeq})`);
          if (st.withdrawAfterRound !== undefined && r.round > st.withdrawAfterRound) {
            err(seq, 'PARTICIPATION_AFTER_WITHDRAW', `round ${r.round}: ${st.name} took part after withdrawing after round ${st.withdrawAfterRound}`);
          }
          if (st.budgetRefusedRounds.has(r.round)) err(seq, 'PARTICIPATION_AFTER_BUDGET_REFUSAL', `round ${r.round}: ${st.name} took part after refusing it for budget`);
          if (m.dp && rec.delta !== m.dp.delta) err(seq, 'DELTA_MISMATCH', `round ${r.round}: ${st.name} accounted at δ=${rec.delta}, manifest says ${m.dp.delta}`);
          if (m.dp && rec.clipNorm !== m.dp.clipNorm) err(seq, 'CLIP_NORM_MISMATCH', `round ${r.round}: ${st.name} clipped at C=${rec.clipNorm}, manifest says ${m.dp.clipNorm}`, 'warning');
          if (typeof m.dp?.noiseMultiplier === 'number' && rec.noiseMultiplier !== m.dp.noiseMultiplier) {
            err(seq, 'NOISE_MULTIPLIER_MISMATCH', `round ${r.round}: ${st.name} used σ=${rec.noiseMultiplier}, manifest says ${m.dp.noiseMultiplier}`, 'warning');
          }
          for (const h of rec.ciphertextHashes) {
            const first = seenCiphertexts.get(h);
            if (first !== undefined) err(seq, 'CIPHERTEXT_REPLAYED', `round ${r.round}: ${st.name}'s ciphertext ${h.slice(0, 12)}… was already recorded at seq ${first}`);
            else seenCiphertexts.set(h, seq);
          }
          if (rec.epsilonCumulative < st.epsilonRecorded) {
            err(seq, 'EPSILON_DECREASED', `round ${r.round}: ${st.name}'s cumulative ε fell from ${fmt(st.epsilonRecorded)} to ${fmt(rec.epsilonCumulative)}`);
          }
          const prevRecomputed = st.epsilonRecomputed;
          const prevRecorded = st.epsilonRecorded;
          st.events.push({ samplingRate: rec.samplingRate, noiseMultiplier: rec.noiseMultiplier, steps: rec.steps });
          if (epsilonOf) {
            const eps = epsilonOf(st.events, rec.delta);
            st.epsilonRecomputed = eps;
            if (understated(rec.epsilonCumulative, eps, tol)) {
              err(seq, 'EPSILON_UNDERSTATED', `round ${r.round}: ${st.name}'s cumulative ε is recorded as ${fmt(rec.epsilonCumulative)} but the recorded DP parameters give ${fmt(eps)}`);
            }
            // Measured from the higher of the recorded and recomputed previous totals, so an
            // overstated earlier round (conservative) does not make this one look understated.
            const inc = eps - Math.max(prevRecomputed ?? 0, prevRecorded);
            if (understated(rec.epsilonSpent, inc, tol)) {
              err(seq, 'EPSILON_SPENT_UNDERSTATED', `round ${r.round}: ${st.name}'s ε spent is recorded as ${fmt(rec.epsilonSpent)} but the recomputed increase is ${fmt(inc)}`);
            }
          }
          st.epsilonRecorded = Math.max(st.epsilonRecorded, rec.epsilonCumulative);
          st.delta = rec.delta;
          st.rounds.set(r.round, { seq, rec, round: r });
          const pol = st.policy;
          if (pol) {
            const spent = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
            const lim = limitOf(pol)!;
            if (spent > lim) err(seq, 'POLICY_EPSILON_EXCEEDED', `round ${r.round}: ${st.name} reached ε=${fmt(spent)}, above its declared limit ${fmt(lim)}`);
            if (rec.delta > pol.maxDelta) err(seq, 'POLICY_DELTA_EXCEEDED', `round ${r.round}: ${st.name} accounted at δ=${rec.delta}, above its limit ${pol.maxDelta}`);
            if (pol.maxRounds !== undefined && st.rounds.size > pol.maxRounds) err(seq, 'POLICY_ROUNDS_EXCEEDED', `round ${r.round}: ${st.name} took part in ${st.rounds.size} rounds, above its limit ${pol.maxRounds}`);
            if (pol.minNoiseMultiplier !== undefined && rec.noiseMultiplier < pol.minNoiseMultiplier) {
              err(seq, 'POLICY_NOISE_TOO_LOW', `round ${r.round}: ${st.name} used σ=${rec.noiseMultiplier}, below its minimum ${pol.minNoiseMultiplier}`);
            }
          }
        }
        const disagree = r.modelHashes.filter((x) => x.hash !== r.globalModelHash);
        if (r.modelHashesAgreed && disagree.length) {
          err(seq, 'MODEL_HASH_AGREEMENT_FALSE', `round ${r.round} claims all model hashes agreed, but ${disagree.map((d) => d.partner).join(', ')} reported a different hash`);
        } else if (!r.modelHashesAgreed) {
          err(seq, 'MODEL_HASHES_DISAGREE', `round ${r.round}: partners' model hashes did not agree`, 'warning');
        }
        break;
      }
      default:
        break;
    }
  }

  if (out.final) {
    const f = out.final;
    const lastR = out.roundsBySeq[out.roundsBySeq.length - 1];
    if (lastR && f.payload.modelHash !== lastR.payload.globalModelHash) {
      err(f.seq, 'FINAL_MODEL_MISMATCH', `final model hash differs from round ${lastR.payload.round}'s global model hash`);
    }
    if (f.payload.rounds !== out.roundsBySeq.length) {
      err(f.seq, 'FINAL_ROUNDS_MISMATCH', `final entry says ${f.payload.rounds} rounds, the ledger records ${out.roundsBySeq.length}`);
    }
    for (const fp of f.payload.partners) {
      const st = out.partners.get(fp.partner);
      if (!st) continue;
      const floor = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
      if (understated(fp.epsilon, floor, tol)) {
        err(f.seq, 'EPSILON_UNDERSTATED', `final entry reports ε=${fmt(fp.epsilon)} for ${st.name}, the rounds give ${fmt(floor)}`);
      }
    }
    for (const st of out.partners.values()) {
      if (st.rounds.size && !f.payload.partners.some((x) => x.partner === st.keyId)) {
        err(f.seq, 'FINAL_PARTNER_MISSING', `final entry omits ${st.name}, who took part in ${st.rounds.size} round(s)`);
      }
    }
  } else if (!halted) {
    const lastSeq = entries.length ? entries[entries.length - 1].seq : -1;
    add({
      seq: lastSeq + 1,
      code: 'JOB_NOT_FINALIZED',
      severity: allowRunning ? 'warning' : 'error',
      message: `the ledger ends at seq ${lastSeq} without model.final or job.halt${allowRunning ? ' (job may still be running)' : ': the final entries may have been cut off'}`,
    });
  }
  return out;
}

interface LocalRound {
  seq: number;
  payload: PayloadOf<'partner.round'>;
}

/** Local-ledger ε recomputation plus the cross-check against the coordinator's job ledger. */
function crossCheck(
  local: { name: string; entries: LedgerEntry[]; ring: KeyRing; valid: Set<number> },
  coord: { name: string; entries: LedgerEntry[]; ring: KeyRing; job: JobAnalysis },
  epsilonOf: EpsilonOf,
  tol: number,
  push: (f: LedgerFinding) => void,
): string | null {
  const L = (seq: number | undefined, code: string, message: string, severity: Severity = 'error'): void =>
    push({ ledger: local.name, seq, code, message, severity });
  const C = (seq: number | undefined, code: string, message: string, severity: Severity = 'error'): void =>
    push({ ledger: coord.name, seq, code, message, severity });
  const self = local.ring.ownerKeyId;
  if (local.ring.kind !== 'local' || !self) {
    L(0, 'NOT_A_PARTNER_LEDGER', 'expected a partner\'s local ledger (starting with ledger.genesis)');
    return null;
  }
  const jobId = coord.job.jobId;
  const st = coord.job.partners.get(self);
  const manifestKey = coord.ring.keys.get(self);
  const localKey = local.ring.keys.get(self);
  if (!st || !manifestKey) {
    L(0, 'PARTNER_NOT_IN_MANIFEST', `partner key ${self} is not a partner of job ${jobId}`);
    return null;
  }
  if (localKey && Buffer.compare(Buffer.from(localKey.publicKey), Buffer.from(manifestKey.publicKey)) !== 0) {
    L(0, 'PARTNER_KEY_MISMATCH', `the local ledger's key differs from the manifest's key for ${st.name}`);
  }
  const list = typed(local.entries, local.valid).filter((x) => (x.payload as { jobId?: string }).jobId === jobId);
  const coordBySeq = new Map(coord.entries.map((e) => [e.seq, e]));

  // Acceptance / refusal agree, and name the manifest entry actually at seq 0.
  const localResp = list.find((x) => x.type === 'partner.acceptance' || x.type === 'partner.refusal');
  const anchor = coord.ring.anchorHash;
  if (localResp) {
    const p = localResp.payload as PayloadOf<'partner.acceptance'>;
    if (anchor && p.manifestHash !== anchor) {
      L(localResp.seq, 'CROSS_MANIFEST_MISMATCH', `${st.name} accepted manifest ${p.manifestHash.slice(0, 12)}…, but the coordinator ledger's manifest entry hashes to ${anchor.slice(0, 12)}…`);
    }
    const localStatus = localResp.type === 'partner.acceptance' ? 'accepted' : 'refused';
    const coordStatus = st.status === 'withdrawn' ? (st.policy ? 'accepted' : 'no-response') : st.status;
    if (coordStatus !== localStatus) {
      L(localResp.seq, 'CROSS_ACCEPTANCE_MISMATCH', `${st.name}'s ledger records ${localStatus}, the coordinator's records ${coordStatus} (seq ${st.responseSeq ?? '—'})`);
    } else if (canonicalJson(p.policy ?? null) !== canonicalJson(st.policy ?? null)) {
      L(localResp.seq, 'CROSS_ACCEPTANCE_MISMATCH', `${st.name}'s declared policy limits differ from those the coordinator recorded at seq ${st.responseSeq}`);
    }
  } else if (st.status !== 'no-response') {
    C(st.responseSeq, 'CROSS_ACCEPTANCE_MISSING', `the coordinator records ${st.name}'s ${st.status === 'refused' ? 'refusal' : 'acceptance'}, its own ledger has none`);
  }

  // Rounds: same set, same parameters, same ciphertexts, same ε; witnesses still present.
  const localRounds = new Map<number, LocalRound>();
  const events: DpEvent[] = [];
  let localEps = 0;
  let localRecorded = 0;
  for (const x of ofType(list, 'partner.round')) {
    const r = x.payload;
    if (localRounds.has(r.round)) L(x.seq, 'DUPLICATE_PARTICIPATION', `round ${r.round} recorded twice in ${st.name}'s ledger`);
    localRounds.set(r.round, { seq: x.seq, payload: r });
    const prevEps = Math.max(localEps, localRecorded);
    events.push({ samplingRate: r.samplingRate, noiseMultiplier: r.noiseMultiplier, steps: r.steps });
    localEps = epsilonOf(events, r.delta);
    if (understated(r.epsilonCumulative, localEps, tol)) {
      L(x.seq, 'EPSILON_UNDERSTATED', `round ${r.round}: ${st.name}'s own ledger records cumulative ε=${fmt(r.epsilonCumulative)}, the recorded DP parameters give ${fmt(localEps)}`);
    }
    if (understated(r.epsilonSpent, localEps - prevEps, tol)) {
      L(x.seq, 'EPSILON_SPENT_UNDERSTATED', `round ${r.round}: ${st.name}'s own ledger records ε spent ${fmt(r.epsilonSpent)}, recomputed ${fmt(localEps - prevEps)}`);
    }
    localRecorded = Math.max(localRecorded, r.epsilonCumulative);
    if (r.coordinatorHead) {
      const w = coordBySeq.get(r.coordinatorHead.seq);
      if (!w) {
        L(x.seq, 'CROSS_WITNESS_MISSING', `round ${r.round}: ${st.name} witnessed coordinator entry seq ${r.coordinatorHead.seq}, which the coordinator ledger no longer has (truncated?)`);
      } else if (entryHash(w) !== r.coordinatorHead.hash) {
        L(x.seq, 'CROSS_WITNESS_MISMATCH', `round ${r.round}: coordinator entry seq ${r.coordinatorHead.seq} is not the entry ${st.name} witnessed (history rewritten)`);
      }
    }
    const c = st.rounds.get(r.round);
    if (!c) {
      L(x.seq, 'CROSS_ROUND_MISSING_IN_COORDINATOR', `${st.name} records round ${r.round} (ε spent ${fmt(r.epsilonSpent)}), the coordinator ledger does not`);
      continue;
    }
    const where = `round ${r.round} (coordinator seq ${c.seq}, ${st.name} seq ${x.seq})`;
    const paramsDiffer = (['samplingRate', 'noiseMultiplier', 'clipNorm', 'steps', 'delta'] as const).filter((k) => r[k] !== c.rec[k]);
    if (paramsDiffer.length) {
      C(c.seq, 'CROSS_DP_PARAMS_MISMATCH', `${where}: ${paramsDiffer.map((k) => `${k} ${c.rec[k]} vs partner's ${r[k]}`).join(', ')}`);
    }
    if (!sameList(r.ciphertextHashes, c.rec.ciphertextHashes)) {
      C(c.seq, 'CROSS_CIPHERTEXT_MISMATCH', `${where}: ciphertext hashes differ`);
    }
    if (r.epsilonSpent !== c.rec.epsilonSpent || r.epsilonCumulative !== c.rec.epsilonCumulative) {
      C(c.seq, 'CROSS_EPSILON_MISMATCH', `${where}: coordinator records ε spent/cumulative ${fmt(c.rec.epsilonSpent)}/${fmt(c.rec.epsilonCumulative)}, partner ${fmt(r.epsilonSpent)}/${fmt(r.epsilonCumulative)}`);
    }
    if (r.globalModelHash !== undefined) {
      const reported = c.round.modelHashes.find((h) => h.partner === self);
      if (r.globalModelHash !== c.round.globalModelHash || (reported && reported.hash !== r.globalModelHash)) {
        C(c.seq, 'CROSS_MODEL_HASH_MISMATCH', `${where}: the partner computed global model ${r.globalModelHash.slice(0, 12)}…, the coordinator records ${c.round.globalModelHash.slice(0, 12)}…`);
      }
    }
  }
  for (const [round, c] of st.rounds) {
    if (!localRounds.has(round)) {
      C(c.seq, 'CROSS_ROUND_MISSING_IN_PARTNER', `round ${round}: the coordinator records ${st.name}'s participation, ${st.name}'s own ledger does not`);
    }
  }

  const localConsent = ofType(list, 'consent.usage')[0];
  if (localConsent && st.consent) {
    const a = localConsent.payload;
    const b = st.consent.payload;
    if (a.rowsUsed !== b.rowsUsed || a.rowsExcludedNoConsent !== b.rowsExcludedNoConsent || (a.sidecar && b.sidecar && a.sidecar.sha256 !== b.sidecar.sha256)) {
      C(st.consent.seq, 'CROSS_CONSENT_MISMATCH', `${st.name}'s consent counts differ: coordinator ${b.rowsUsed} used / ${b.rowsExcludedNoConsent} excluded, partner (seq ${localConsent.seq}) ${a.rowsUsed} / ${a.rowsExcludedNoConsent}`);
    }
  } else if (localConsent && !st.consent) {
    // fedmark keeps row counts off the coordinator (they would reveal each partner's weight), so
    // the counts come from the partner's own ledger when it is audited alongside.
    st.localConsent = { seq: localConsent.seq, payload: localConsent.payload };
  }

  const localWithdraw = ofType(list, 'partner.withdraw')[0];
  if (localWithdraw && st.withdrawAfterRound === undefined) {
    L(localWithdraw.seq, 'CROSS_WITHDRAW_MISSING', `${st.name} withdrew after round ${localWithdraw.payload.afterRound}, the coordinator ledger does not record it`);
  }
  const localFinal = ofType(list, 'model.final')[0];
  if (localFinal && coord.job.final && localFinal.payload.modelHash !== coord.job.final.payload.modelHash) {
    C(coord.job.final.seq, 'CROSS_FINAL_MODEL_MISMATCH', `${st.name} (seq ${localFinal.seq}) recorded a different final model hash`);
  }
  return self;
}

/**
 * An accountant that rejects a recorded parameter (e.g. a sampling rate it cannot handle) must not
 * abort the audit: the ε is then unknown, which is reported, and treated as +∞ for budget checks.
 */
function safeEpsilonOf(epsilonOf: EpsilonOf, onError: (message: string) => void): EpsilonOf {
  return (events, delta) => {
    try {
      const eps = epsilonOf(events, delta);
      if (typeof eps !== 'number' || Number.isNaN(eps)) throw new Error(`accountant returned ${String(eps)}`);
      return eps;
    } catch (err) {
      onError((err as Error).message);
      return Infinity;
    }
  };
}

/** Audits a job ledger and, optionally, partners' local ledgers. Never throws on bad ledgers. */
export function auditLedgers(opts: AuditOptions): AuditResult {
  const tol = opts.epsilonTolerance ?? 1e-9;
  const findings: AuditFinding[] = [];
  let epsilonFailure: string | null = null;
  const epsilonOf = safeEpsilonOf(opts.epsilonOf, (m) => {
    epsilonFailure ??= m;
  });
  const coordIn = load(opts.coordinator, 'coordinator');
  const cv = verifyLedger(coordIn.read, { name: coordIn.name, trustedOwnerKeys: opts.trustedOwnerKeys });
  findings.push(...cv.findings);
  const ledgers = [{ name: cv.ledger, entries: cv.entries.length, ok: cv.ok }];
  if (cv.keyRing.kind !== 'job') {
    if (cv.keyRing.kind === 'local') {
      findings.push({ ledger: cv.ledger, seq: 0, code: 'NOT_A_JOB_LEDGER', severity: 'error', message: 'the coordinator ledger must start with a job manifest' });
    }
  }
  const job = analyzeJob(
    cv.entries,
    cv.keyRing,
    cv.validPayloadSeqs,
    epsilonOf,
    tol,
    (f) => findings.push({ ledger: cv.ledger, ...f }),
    opts.allowRunning ?? false,
  );

  const checked = new Set<string>();
  (opts.partners ?? []).forEach((input, i) => {
    const li = load(input, `partner[${i}]`);
    const pv = verifyLedger(li.read, { name: li.name });
    findings.push(...pv.findings);
    ledgers.push({ name: pv.ledger, entries: pv.entries.length, ok: pv.ok });
    const who = crossCheck(
      { name: pv.ledger, entries: pv.entries, ring: pv.keyRing, valid: pv.validPayloadSeqs },
      { name: cv.ledger, entries: cv.entries, ring: cv.keyRing, job },
      epsilonOf,
      tol,
      (f) => findings.push(f),
    );
    if (who) checked.add(who);
  });

  if (epsilonFailure !== null) {
    findings.push({ ledger: cv.ledger, code: 'EPSILON_UNCOMPUTABLE', severity: 'error', message: `the accountant could not recompute ε from the recorded parameters: ${epsilonFailure}` });
  }
  const partners = summaries(job, checked);
  return { ok: !findings.some((f) => f.severity === 'error'), jobId: job.jobId, findings, partners, ledgers };
}

function summaries(job: JobAnalysis, checked: Set<string>): PartnerSummary[] {
  return [...job.partners.values()].map((st) => {
    const epsilon = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
    const lim = limitOf(st.policy);
    return {
      partner: st.keyId,
      name: st.name,
      status: st.status,
      rounds: st.rounds.size,
      rowsUsed: (st.consent ?? st.localConsent)?.payload.rowsUsed ?? null,
      rowsWithoutConsent: (st.consent ?? st.localConsent)?.payload.rowsExcludedNoConsent ?? null,
      epsilon,
      epsilonRecorded: st.epsilonRecorded,
      epsilonRecomputed: st.epsilonRecomputed,
      delta: st.delta,
      epsilonLimit: lim,
      budgetLeft: lim === null ? null : lim - epsilon,
      localLedgerChecked: checked.has(st.keyId),
    };
  });
}

/**
 * Per-partner privacy summary of a job ledger without judging it (no findings). With `epsilonOf`
 * the summary's ε is max(recorded, recomputed); without it, the recorded ε.
 */
export function summarizePrivacy(ledger: LedgerInput, opts: { epsilonOf?: EpsilonOf } = {}): { jobId: string | null; partners: PartnerSummary[] } {
  const li = load(ledger, 'ledger');
  const v = verifyLedger(li.read, { name: li.name });
  const job = analyzeJob(v.entries, v.keyRing, v.validPayloadSeqs, opts.epsilonOf ? safeEpsilonOf(opts.epsilonOf, () => undefined) : null, 1e-9, () => undefined, true);
  return { jobId: job.jobId, partners: summaries(job, new Set()) };
}

/** ε shown to humans is rounded *up*; budget left is rounded *down*. */
export function ceilTo(x: number, digits: number): string {
  const f = 10 ** digits;
  return (Math.ceil(x * f - 1e-9) / f).toFixed(digits);
}
function floorTo(x: number, digits: number): string {
  const f = 10 ** digits;
  return (Math.floor(x * f + 1e-9) / f).toFixed(digits);
}

/** Plain-text table + findings for the CLI. */
export function formatAuditSummary(result: AuditResult): string {
  const errors = result.findings.filter((f) => f.severity === 'error').length;
  const warnings = result.findings.length - errors;
  const lines: string[] = [];
  lines.push(`fedmark audit — job ${result.jobId ?? '(unknown)'}: ${result.ok ? 'OK' : 'FAILED'} (${errors} error(s), ${warnings} warning(s))`);
  for (const l of result.ledgers) lines.push(`  ledger ${path.basename(l.name)}: ${l.entries} entries, ${l.ok ? 'intact' : 'problems found'}`);
  lines.push('');
  const header = ['partner', 'key', 'status', 'rounds', 'rows used', 'no consent', 'ε (≤)', 'δ', 'ε limit', 'budget left', 'local ledger'];
  const rows = result.partners.map((p) => [
    p.name,
    p.partner.slice(0, 8),
    p.status,
    String(p.rounds),
    p.rowsUsed === null ? '—' : String(p.rowsUsed),
    p.rowsWithoutConsent === null ? '—' : String(p.rowsWithoutConsent),
    ceilTo(p.epsilon, 4),
    p.delta === null ? '—' : p.delta.toExponential(1),
    p.epsilonLimit === null ? '—' : String(p.epsilonLimit),
    p.budgetLeft === null ? '—' : floorTo(p.budgetLeft, 4),
    p.localLedgerChecked ? 'cross-checked' : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmtRow = (r: string[]): string => r.map((c, i) => (i >= 3 && i <= 9 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  lines.push(fmtRow(header));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) lines.push(fmtRow(r));
  if (result.findings.length) {
    lines.push('');
    lines.push('findings:');
    for (const f of result.findings) {
      lines.push(`  [${f.severity}] ${path.basename(f.ledger)}${f.seq !== undefined ? ` seq ${f.seq}` : ''} ${f.code}: ${f.message}`);
    }
  }
  return lines.join('\n');
}
