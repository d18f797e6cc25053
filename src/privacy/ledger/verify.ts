/**
 * Integrity verification of one ledger: line-level problems from the reader, sequence numbers,
 * the hash chain, every Ed25519 signature against the keys the ledger's seq-0 entry declares, and
 * which key may author which entry type. Semantics (ε, policies, cross-ledger agreement) are
 * audit.ts's job.
 *
 * Trust anchor: a job ledger's seq 0 is the job manifest, signed by the job owner and listing every
 * key allowed to write to the ledger; a node's local ledger starts with `ledger.genesis` declaring
 * the node's own key. Both are self-signed, so on their own they prove consistency, not identity:
 * pass `trustedOwnerKeys`, and cross-check partner ledgers (whose acceptances record the manifest
 * entry's hash and whose keys must match the manifest) to anchor them.
 */
import { GENESIS_PREV, SUPPORTED_LEDGER_VERSIONS, envelopeSchema, parsePayload, type EntryType, type LedgerEntry, type Party } from './entries.ts';
import { verifyHeadSignature, type HeadPointer } from './head.ts';
import type { ReadLedgerResult } from './reader.ts';
import { entryHash, fromBase64, keyIdOf, toBase64, verifyAttestation, verifyEntrySignature } from './signing.ts';

export type Severity = 'error' | 'warning';

export interface LedgerFinding {
  /** Ledger label (file path or caller-given name). */
  ledger: string;
  /** The entry the finding is about (for missing entries: the seq that is missing). */
  seq?: number;
  code: string;
  message: string;
  severity: Severity;
}

export type Role = 'owner' | 'coordinator' | 'partner' | 'self';

export interface KeyInfo {
  keyId: string;
  name: string;
  publicKey: Uint8Array;
  roles: Set<Role>;
}

export interface KeyRing {
  kind: 'job' | 'local' | 'unknown';
  keys: Map<string, KeyInfo>;
  jobId?: string;
  ownerKeyId?: string;
  coordinatorKeyId?: string;
  /** Partner key ids, in manifest order (job ledgers). */
  partners: string[];
  /** Hash of the seq-0 entry (what partners' acceptances must name). */
  anchorHash?: string;
  /** Role declared in a local ledger's genesis. */
  localRole?: 'partner' | 'coordinator' | 'owner';
}

export interface VerifyOptions {
  /** Label for findings; defaults to the file path or 'ledger'. */
  name?: string;
  /** If given, the ledger's owner (seq-0 author) must be one of these key ids. */
  trustedOwnerKeys?: string[];
  /** If given, the coordinator a job ledger's manifest entry names (the key that writes the ledger) must be one of these. */
  trustedCoordinatorKeys?: string[];
}

export interface VerifyResult {
  ledger: string;
  ok: boolean;
  findings: LedgerFinding[];
  keyRing: KeyRing;
  entries: LedgerEntry[];
  /** Seqs of entries whose payload validated against their type's schema. */
  validPayloadSeqs: Set<number>;
}

const JOB_TYPES: ReadonlySet<EntryType> = new Set<EntryType>([
  'job.manifest',
  'partner.acceptance',
  'partner.refusal',
  'key.ceremony',
  'round',
  'evaluation',
  'attempt.failed',
  'budget.refusal',
  'consent.usage',
  'partner.withdraw',
  'partner.leave',
  'job.halt',
  'model.final',
  'ledger.truncation-repaired',
  // vertical learning (docs/VERTICAL.md)
  'psi.job',
  'psi.full',
  'psi.intersection',
  'relay.round',
  'vertical.release',
]);
const LOCAL_TYPES: ReadonlySet<EntryType> = new Set<EntryType>([
  'ledger.genesis',
  'partner.acceptance',
  'partner.refusal',
  'partner.round',
  'partner.participation',
  'partner.witness',
  'partner.release',
  'partner.selection',
  'key.ceremony',
  'evaluation',
  'budget.refusal',
  'consent.usage',
  'consent.withdrawal',
  'partner.withdraw',
  'partner.leave',
  'job.halt',
  'model.final',
  'model.scoring',
  'ledger.truncation-repaired',
  'psi.party.list',
  'psi.party.hop',
  'psi.party.result',
  'vertical.release',
  'vertical.party.job',
]);

/** Decodes an Ed25519 public key; null if malformed. */
function decodeKey(b64: string): Uint8Array | null {
  try {
    const k = fromBase64(b64);
    return k.length === 32 && toBase64(k) === b64 ? k : null;
  } catch {
    return null;
  }
}

function isReadResult(x: ReadLedgerResult | LedgerEntry[]): x is ReadLedgerResult {
  return !Array.isArray(x);
}

/** Builds the key ring from seq 0, reporting anchor problems. */
function buildKeyRing(first: LedgerEntry | undefined, add: (f: Omit<LedgerFinding, 'ledger'>) => void): KeyRing {
  const ring: KeyRing = { kind: 'unknown', keys: new Map(), partners: [] };
  if (!first || first.seq !== 0) {
    add({
      code: 'NO_TRUST_ANCHOR',
      seq: 0,
      severity: 'error',
      message: 'seq 0 (job manifest or ledger genesis) is missing or unreadable; no signature can be checked',
    });
    return ring;
  }
  const addParty = (p: Party, role: Role): void => {
    const pk = decodeKey(p.signPublicKey);
    if (!pk) {
      add({ code: 'BAD_PUBLIC_KEY', seq: 0, severity: 'error', message: `${role} ${p.name}: signPublicKey is not a 32-byte Ed25519 key` });
      return;
    }
    if (keyIdOf(pk) !== p.keyId) {
      add({
        code: 'KEY_ID_MISMATCH',
        seq: 0,
        severity: 'error',
        message: `${role} ${p.name}: keyId ${p.keyId} is not the hash of its public key (${keyIdOf(pk)})`,
      });
      return;
    }
    const existing = ring.keys.get(p.keyId);
    if (existing) existing.roles.add(role);
    else ring.keys.set(p.keyId, { keyId: p.keyId, name: p.name, publicKey: pk, roles: new Set([role]) });
  };
  if (first.type === 'job.manifest') {
    const parsed = parsePayload('job.manifest', first.payload, first.schemaVersion);
    if (!parsed.success) {
      add({ code: 'NO_TRUST_ANCHOR', seq: 0, severity: 'error', message: `job manifest payload invalid: ${parsed.error.issues[0]?.message}` });
      return ring;
    }
    const m = parsed.data;
    ring.kind = 'job';
    ring.jobId = m.jobId;
    ring.ownerKeyId = m.owner.keyId;
    ring.coordinatorKeyId = m.coordinator.keyId;
    addParty(m.owner, 'owner');
    addParty(m.coordinator, 'coordinator');
    const seen = new Set<string>();
    for (const p of m.partners) {
      if (seen.has(p.keyId)) add({ code: 'DUPLICATE_PARTNER', seq: 0, severity: 'error', message: `partner key ${p.keyId} listed twice` });
      seen.add(p.keyId);
      ring.partners.push(p.keyId);
      addParty(p, 'partner');
    }
  } else if (first.type === 'ledger.genesis') {
    const parsed = parsePayload('ledger.genesis', first.payload, first.schemaVersion);
    if (!parsed.success) {
      add({ code: 'NO_TRUST_ANCHOR', seq: 0, severity: 'error', message: `ledger genesis payload invalid: ${parsed.error.issues[0]?.message}` });
      return ring;
    }
    ring.kind = 'local';
    ring.ownerKeyId = parsed.data.owner.keyId;
    ring.localRole = parsed.data.role;
    addParty(parsed.data.owner, 'self');
  } else {
    add({
      code: 'NO_TRUST_ANCHOR',
      seq: 0,
      severity: 'error',
      message: `seq 0 is a ${first.type} entry; a ledger must start with job.manifest or ledger.genesis`,
    });
    return ring;
  }
  ring.anchorHash = entryHash(first);
  if (first.author !== ring.ownerKeyId) {
    add({
      code: 'UNAUTHORIZED_AUTHOR',
      seq: 0,
      severity: 'error',
      message: `seq 0 is signed by ${first.author}, not by the owner key ${ring.ownerKeyId} it declares`,
    });
  }
  return ring;
}

/**
 * Who may author what. Acceptances, refusals and withdrawals recorded by the coordinator must carry
 * the partner's attestation, so the coordinator cannot invent a partner's consent or limits.
 */
function checkAuthorization(e: LedgerEntry, payload: unknown, ring: KeyRing, add: (f: Omit<LedgerFinding, 'ledger'>) => void): void {
  const author = ring.keys.get(e.author);
  if (!author) return;
  const is = (r: Role): boolean => author.roles.has(r);
  const deny = (why: string): void =>
    add({ code: 'UNAUTHORIZED_AUTHOR', seq: e.seq, severity: 'error', message: `${e.type} at seq ${e.seq} authored by ${author.name} (${e.author}): ${why}` });
  const p = payload as Record<string, unknown>;
  const partner = typeof p.partner === 'string' ? p.partner : undefined;

  if (ring.kind === 'local') {
    if (!is('self')) deny('a local ledger is written only by its own node');
    if (partner !== undefined && partner !== ring.ownerKeyId) {
      add({
        code: 'PARTNER_MISMATCH',
        seq: e.seq,
        severity: 'error',
        message: `${e.type} at seq ${e.seq} names partner ${partner}, but this is the local ledger of ${ring.ownerKeyId}`,
      });
    }
    if (e.type === 'ledger.genesis' && e.seq !== 0) deny('ledger.genesis is allowed only at seq 0');
    return;
  }
  if (ring.kind !== 'job') return;
  if (partner !== undefined && !ring.partners.includes(partner)) {
    add({
      code: 'UNKNOWN_PARTNER',
      seq: e.seq,
      severity: 'error',
      message: `${e.type} at seq ${e.seq} names partner ${partner}, who is not a partner in the manifest`,
    });
  }
  const staff = is('coordinator') || is('owner');
  switch (e.type) {
    case 'job.manifest':
      if (e.seq !== 0) deny('the job manifest is allowed only at seq 0');
      break;
    case 'partner.acceptance':
    case 'partner.refusal':
    case 'partner.withdraw':
    case 'vertical.release':
    case 'partner.leave': {
      if (partner && e.author === partner) break;
      if (!staff) {
        deny('only the partner itself or the coordinator may record it');
        break;
      }
      const att = (p as { attestation?: { keyId: string } }).attestation;
      const partnerKey = partner ? ring.keys.get(partner) : undefined;
      if (!att) {
        add({
          code: 'ATTESTATION_MISSING',
          seq: e.seq,
          severity: 'error',
          message: `${e.type} at seq ${e.seq} was recorded by ${author.name} without the partner's signed attestation`,
        });
      } else if (!partnerKey || att.keyId !== partner || !verifyAttestation(p, partnerKey.publicKey)) {
        add({
          code: 'ATTESTATION_INVALID',
          seq: e.seq,
          severity: 'error',
          message: `${e.type} at seq ${e.seq}: the partner attestation does not verify under partner ${partner}'s key`,
        });
      }
      break;
    }
    case 'budget.refusal':
    case 'consent.usage':
      if (!(staff || (partner && e.author === partner))) deny('only the partner itself or the coordinator may record it');
      break;
    case 'key.ceremony':
    case 'round':
    case 'evaluation':
    case 'attempt.failed':
    case 'model.final':
    case 'psi.job':
    case 'psi.full':
    case 'psi.intersection':
    case 'relay.round':
      if (!staff) deny('only the coordinator or the job owner may record it');
      break;
    case 'job.halt':
    case 'ledger.truncation-repaired':
      break; // any key of the job may pull the emergency brake / record a repair
    default:
      deny('entry type not allowed in a job ledger');
  }
}

/** Verifies chain, sequence, signatures and authorship. Never throws on bad content. */
export function verifyLedger(input: ReadLedgerResult | LedgerEntry[], opts: VerifyOptions = {}): VerifyResult {
  const read = isReadResult(input) ? input : null;
  const entries = read ? read.entries : (input as LedgerEntry[]);
  const ledger = opts.name ?? read?.path ?? 'ledger';
  const findings: LedgerFinding[] = [];
  const add = (f: Omit<LedgerFinding, 'ledger'>): void => {
    findings.push({ ledger, ...f });
  };

  if (read) {
    for (const p of read.problems) {
      add({ code: p.code, seq: p.seq, severity: 'error', message: p.message });
    }
  }

  const ring = buildKeyRing(entries[0]?.seq === 0 ? entries[0] : undefined, add);
  if (opts.trustedOwnerKeys && ring.ownerKeyId && !opts.trustedOwnerKeys.includes(ring.ownerKeyId)) {
    add({
      code: 'UNTRUSTED_OWNER',
      seq: 0,
      severity: 'error',
      message: `ledger owner ${ring.ownerKeyId} is not among the trusted owner keys (${opts.trustedOwnerKeys.join(', ')})`,
    });
  }
  if (opts.trustedCoordinatorKeys && ring.kind === 'job' && (!ring.coordinatorKeyId || !opts.trustedCoordinatorKeys.includes(ring.coordinatorKeyId))) {
    add({
      code: 'UNTRUSTED_COORDINATOR',
      seq: 0,
      severity: 'error',
      message: `the job ledger names coordinator ${ring.coordinatorKeyId ?? '(none)'}, which is not among the trusted coordinator keys (${opts.trustedCoordinatorKeys.join(', ')})`,
    });
  }
  const allowed = ring.kind === 'local' ? LOCAL_TYPES : ring.kind === 'job' ? JOB_TYPES : null;
  const validPayloadSeqs = new Set<number>();
  let prevTs: string | null = null;
  const seenSeq = new Set<number>();

  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    // In-memory input has not been through the reader; check the envelope here too.
    if (!read) {
      const env = envelopeSchema.safeParse(e);
      if (!env.success) {
        add({
          code: 'BAD_ENVELOPE',
          seq: (e as { seq?: number })?.seq,
          severity: 'error',
          message: `entry #${i}: ${env.error.issues[0]?.path.join('.')}: ${env.error.issues[0]?.message}`,
        });
        continue;
      }
    }
    if (!(SUPPORTED_LEDGER_VERSIONS as readonly number[]).includes(e.schemaVersion)) {
      add({ code: 'UNSUPPORTED_SCHEMA', seq: e.seq, severity: 'error', message: `seq ${e.seq}: schemaVersion ${e.schemaVersion} is not supported` });
    }
    const expectedSeq = i === 0 ? 0 : entries[i - 1].seq + 1;
    if (e.seq !== expectedSeq) {
      // Name the position (the seq that belongs here), and say what the line claims.
      if (seenSeq.has(e.seq) || e.seq < expectedSeq) {
        add({
          code: 'SEQ_OUT_OF_ORDER',
          seq: expectedSeq,
          severity: 'error',
          message: `an entry claiming seq ${e.seq} appears where seq ${expectedSeq} was expected (entries reordered, duplicated or edited)`,
        });
      } else {
        const missing = e.seq - 1 === expectedSeq ? `seq ${expectedSeq} is` : `seqs ${expectedSeq}..${e.seq - 1} are`;
        add({ code: 'SEQ_GAP', seq: expectedSeq, severity: 'error', message: `${missing} missing before an entry claiming seq ${e.seq}` });
      }
    }
    seenSeq.add(e.seq);
    const expectedPrev = i === 0 ? GENESIS_PREV : entryHash(entries[i - 1]);
    if (e.prev !== expectedPrev) {
      add({
        code: 'CHAIN_BROKEN',
        seq: e.seq,
        severity: 'error',
        message: `seq ${e.seq}: prev hash does not match the hash of the entry before it${i === 0 ? ' (genesis)' : ` (seq ${entries[i - 1].seq})`}`,
      });
    }
    if (prevTs !== null && e.ts < prevTs) {
      add({
        code: 'TIMESTAMP_REGRESSION',
        seq: e.seq,
        severity: 'warning',
        message: `seq ${e.seq}: timestamp ${e.ts} is earlier than the previous entry's ${prevTs}`,
      });
    }
    prevTs = e.ts;

    const parsed = parsePayload(e.type, e.payload, e.schemaVersion);
    if (!parsed.success) {
      const is = parsed.error.issues[0];
      add({
        code: 'BAD_PAYLOAD',
        seq: e.seq,
        severity: 'error',
        message: `seq ${e.seq} (${e.type}): payload invalid at ${is?.path.join('.') || '(root)'}: ${is?.message}`,
      });
    } else {
      validPayloadSeqs.add(e.seq);
    }
    if (allowed && !allowed.has(e.type)) {
      add({ code: 'TYPE_NOT_ALLOWED', seq: e.seq, severity: 'error', message: `seq ${e.seq}: ${e.type} entries do not belong in a ${ring.kind} ledger` });
    }
    if (ring.kind === 'job' && ring.jobId !== undefined) {
      const jid = (e.payload as { jobId?: unknown } | null)?.jobId;
      if (jid !== undefined && jid !== ring.jobId) {
        add({
          code: 'JOB_ID_MISMATCH',
          seq: e.seq,
          severity: 'error',
          message: `seq ${e.seq}: jobId ${String(jid)} differs from the manifest's ${ring.jobId}`,
        });
      }
    }
    if (ring.kind === 'unknown') continue;
    const key = ring.keys.get(e.author);
    if (!key) {
      add({
        code: 'UNKNOWN_AUTHOR',
        seq: e.seq,
        severity: 'error',
        message: `seq ${e.seq} (${e.type}) is signed by key ${e.author}, which the ledger's seq-0 entry does not authorize`,
      });
      continue;
    }
    if (!verifyEntrySignature(e, key.publicKey)) {
      add({
        code: 'BAD_SIGNATURE',
        seq: e.seq,
        severity: 'error',
        message: `seq ${e.seq} (${e.type}): signature does not verify under ${key.name}'s key ${e.author}`,
      });
      continue;
    }
    if (parsed.success) checkAuthorization(e, parsed.data, ring, add);
  }

  if (read && read.totalBytes > 0) checkHead(read.head, entries, ring, add);
  if (read && read.totalBytes === 0 && read.head) checkHead(read.head, entries, ring, add);

  return { ledger, ok: !findings.some((f) => f.severity === 'error'), findings, keyRing: ring, entries, validPayloadSeqs };
}

function checkHead(head: HeadPointer | null, entries: LedgerEntry[], ring: KeyRing, add: (f: Omit<LedgerFinding, 'ledger'>) => void): void {
  const last = entries.length ? entries[entries.length - 1] : null;
  if (!head) {
    // An error, not a warning: the head pointer is what shows that whole entries were cut off the end.
    add({
      code: 'HEAD_MISSING',
      severity: 'error',
      message: 'no head pointer file (<ledger>.head): entries cut off the end of the ledger could not be detected, so the ledger cannot be vouched for',
    });
    return;
  }
  const key = ring.keys.get(head.author);
  if (!key || !verifyHeadSignature(head, key.publicKey)) {
    add({ code: 'HEAD_BAD_SIGNATURE', seq: head.seq, severity: 'error', message: `head pointer (seq ${head.seq}) is not signed by a key of this ledger` });
  }
  if (!last || head.seq > last.seq) {
    add({
      code: 'TRUNCATED_AT_LINE_BOUNDARY',
      seq: last ? last.seq + 1 : 0,
      severity: 'error',
      message: `head pointer names seq ${head.seq} but the ledger ends ${last ? `at seq ${last.seq}` : 'empty'}: entries ${last ? last.seq + 1 : 0}..${head.seq} are missing`,
    });
    return;
  }
  const at = entries.find((x) => x.seq === head.seq);
  if (!at || entryHash(at) !== head.hash) {
    add({
      code: 'HEAD_MISMATCH',
      seq: head.seq,
      severity: 'error',
      message: `entry seq ${head.seq} does not have the hash the head pointer recorded (rewritten history)`,
    });
  }
  if (head.seq < last.seq - 1) {
    add({
      code: 'HEAD_BEHIND',
      seq: head.seq + 1,
      severity: 'warning',
      message: `head pointer is at seq ${head.seq} but the file goes to seq ${last.seq}: entries after ${head.seq + 1} were not appended by the ledger writer`,
    });
  }
}

/** Hash of a ledger's anchor entry, as partners record it in their acceptances. */
export function manifestEntryHash(manifestEntry: LedgerEntry): string {
  return entryHash(manifestEntry);
}
