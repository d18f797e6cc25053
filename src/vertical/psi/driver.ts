/**
 * Runs a PSI job in one process: the parties and the coordinator exchange their messages through
 * a queue, every message passing the same checks as over a network. Used by tests (an `intercept`
 * hook plays the lying relay or network attacker) and by the benchmark; a real deployment moves the
 * same messages over the federation's transport instead.
 */
import type { Identity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { PsiCoordinator } from './coordinator.ts';
import type { PsiEngine } from './engine.ts';
import type { PsiMessage } from './messages.ts';
import type { PsiElements } from './normalise.ts';
import { PsiParty, type PsiOutcome } from './party.ts';
import type { PsiSpec } from './spec.ts';

export interface InMemoryPsiOptions {
  spec: PsiSpec;
  /** In ring order, matching spec.parties. */
  parties: { identity: Identity; ids: readonly string[] | PsiElements; engine?: PsiEngine }[];
  coordinator: Identity;
  /** Engine for parties that do not bring their own. */
  engine: PsiEngine;
  /**
   * Sees every message before delivery and returns what is delivered instead (null drops it).
   * `to` is 'coordinator' for messages the coordinator receives or relays.
   */
  intercept?: (msg: PsiMessage, hop: { from: string; to: string; n: number }) => PsiMessage | PsiMessage[] | null;
  onMessage?: (msg: PsiMessage) => void;
}

export interface InMemoryPsiRun {
  outcomes: PsiOutcome[];
  parties: PsiParty[];
  coordinator: PsiCoordinator;
  messages: number;
  bodyBytes: number;
}

export async function runInMemoryPsi(options: InMemoryPsiOptions): Promise<InMemoryPsiRun> {
  const { spec } = options;
  if (options.parties.length !== spec.parties.length) {
    throw new FedmarkError('PSI_BAD_OPTIONS', `the spec has ${spec.parties.length} parties, ${options.parties.length} were given`);
  }
  const parties = options.parties.map((p) => new PsiParty({ spec, identity: p.identity, ids: p.ids, engine: p.engine ?? options.engine }));
  const coordinator = new PsiCoordinator(spec, options.coordinator);
  const byKey = new Map(parties.map((p) => [p.keyId, p]));
  const queue: PsiMessage[] = [];
  let messages = 0;
  let bodyBytes = 0;
  const enqueue = (out: PsiMessage[]) => {
    for (const m of out) {
      const routed = options.intercept ? options.intercept(m, { from: m.header.from, to: m.header.to, n: messages }) : m;
      for (const r of routed === null ? [] : Array.isArray(routed) ? routed : [routed]) queue.push(r);
    }
  };
  // Messages are delivered in waves, each wave's deliveries running concurrently (as independent
  // nodes would), so one party's main-thread work overlaps another's curve work in the pool.
  for (const out of await Promise.all(parties.map((p) => p.start()))) enqueue(out);
  // Each party sends m lists, then m receipt rounds: the bound only stops a runaway interceptor.
  const limit = 20 * spec.parties.length * spec.parties.length + 100;
  while (queue.length > 0) {
    const wave = queue.splice(0, queue.length);
    messages += wave.length;
    if (messages > limit) throw new FedmarkError('PSI_TOO_MANY_MESSAGES', `more than ${limit} messages: the run does not terminate`);
    const outs = await Promise.all(
      wave.map(async (m) => {
        options.onMessage?.(m);
        bodyBytes += m.body.length;
        if (m.header.to === coordinator.keyId) return coordinator.receive(m);
        const party = byKey.get(m.header.to);
        if (!party) throw new FedmarkError('PSI_MISROUTED', `message addressed to unknown key ${m.header.to}`);
        return party.receive(m.header.kind === 'psi.list' ? coordinator.relay(m) : m);
      }),
    );
    for (const out of outs) enqueue(out);
  }
  const pending = parties.filter((p) => p.state !== 'done');
  if (pending.length > 0) {
    throw new FedmarkError('PSI_INCOMPLETE', `the run ended with ${pending.map((p) => `${p.spec.parties[p.index].name} (${p.state})`).join(', ')} unfinished`);
  }
  return { outcomes: parties.map((p) => p.outcome()), parties, coordinator, messages, bodyBytes };
}
