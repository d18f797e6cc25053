/**
 * Runs a vertical SecureBoost job in one process: the label holder and the feature holders exchange
 * every message through the same sealed, signed envelopes as over the federation (./envelope.ts), and
 * the same round schedule. Used by tests (equality with the pooled GBDT, byte scans, tampering) and by
 * the benchmark; a real deployment relays the same frames through the coordinator.
 */
import { keyId as keyIdOf, publicIdentity, type Identity, type PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { VerticalHeContext } from '../he/context.ts';
import { openMessage, sealMessage, type Addressing } from '../envelope.ts';
import { ActiveParty } from './active.ts';
import { PassiveParty } from './passive.ts';
import { specHashOf, type SecureBoostParams } from './params.ts';
import type { PartyRows } from './rows.ts';
import { schedule, type Step } from './schedule.ts';

export interface RelayedFrame {
  step: Step;
  from: string;
  to: string;
  frame: Uint8Array;
}

export interface InMemoryOptions {
  jobId: string;
  params: SecureBoostParams;
  label: { identity: Identity; rows: PartyRows & { y: Float32Array } };
  features: { identity: Identity; rows: PartyRows }[];
  /** Sees every frame before delivery and returns the frame to deliver instead. */
  intercept?: (f: RelayedFrame) => Uint8Array;
  /** Called before each step with the release it charges (the label holder's accountant). */
  onRelease?: (step: Step) => void;
}

export interface InMemoryRun {
  active: ActiveParty;
  passives: PassiveParty[];
  /** Bytes of every frame, by step kind. */
  bytes: Record<string, number>;
  /** Frames each feature holder sent, in order. */
  sentByFeatures: Uint8Array[][];
  /** Frees the parties' keys and the HE context. */
  dispose(): void;
}

export async function runInMemorySecureBoost(o: InMemoryOptions): Promise<InMemoryRun> {
  const he = await VerticalHeContext.create(o.params.he);
  const ids = [o.label.identity, ...o.features.map((f) => f.identity)];
  const pubs = ids.map(publicIdentity);
  const keyIds = pubs.map((p) => p.keyId);
  o.params.parties.forEach((p, k) => {
    if (p.keyId !== keyIds[k]) throw new FedmarkError('VERTICAL_NOT_A_PARTY', `party ${k} of the job is ${p.keyId}, the run was given ${keyIds[k]}`);
  });
  const keyOf = (k: string): PublicIdentity | undefined => pubs.find((p) => p.keyId === k);
  const me = (i: number) => ({ ...ids[i], keyId: keyIdOf(ids[i].signPublicKey) });
  const specHash = specHashOf(o.params);
  const active = new ActiveParty({ params: o.params, rows: o.label.rows, he });
  const passives = o.features.map((f, k) => new PassiveParty({ params: o.params, party: k + 1, rows: f.rows, he }));
  const bytes: Record<string, number> = {};
  const sentByFeatures = o.features.map(() => [] as Uint8Array[]);
  const relay = (step: Step, from: number, to: number, sections: { name: string; bytes: Uint8Array }[]) => {
    const a: Addressing = { jobId: o.jobId, specHash, round: step.round, kind: step.kind, from: keyIds[from], to: keyIds[to] };
    let frame = sealMessage(a, sections, ids[from], pubs[to]);
    if (from > 0) sentByFeatures[from - 1].push(frame);
    bytes[step.kind] = (bytes[step.kind] ?? 0) + frame.length;
    if (o.intercept) frame = o.intercept({ step, from: keyIds[from], to: keyIds[to], frame });
    return openMessage(frame, me(to), a, keyOf);
  };
  const dispose = () => {
    active.dispose();
    for (const p of passives) p.dispose();
    he.dispose();
  };
  try {
    for (const step of schedule(o.params)) {
      o.onRelease?.(step);
      if (step.sender === 'label') {
        for (const [party, sections] of active.produce(step)) passives[party - 1].consume(step, relay(step, 0, party, sections));
      } else {
        passives.forEach((p, k) => active.consume(step, k + 1, relay(step, k + 1, 0, p.produce(step))));
      }
    }
  } catch (err) {
    dispose();
    throw err;
  }
  return { active, passives, bytes, sentByFeatures, dispose };
}
