import { ceilTo, NOT_DP, type AuditFinding } from '../../src/privacy/ledger/audit.ts';

/** What `fedmark demo --json` prints and summary.json holds. */
export interface DemoSummary {
  dataset: string;
  partners: number;
  model: string;
  /** Rounds that train (a gbdt job: one per step of its trees); an evaluation round follows. */
  rounds: number;
  backend: string;
  auc: { federated: number; federatedFromHistograms: number; centralized: number; local: Record<string, number> };
  perRoundAuc: number[];
  encryption: { scheme: string; polyModulusDegree?: number; coeffModulusBits?: number[]; wireBytesPerParameter: number };
  privacy: { delta: number; epsilon: Record<string, number>; noiseMultiplier: number; clipNorm: number; targetEpsilon: number } | null;
  audit: { ok: boolean; findings: AuditFinding[] };
  report: string;
  out: string;
  wallSeconds: number;
}

/** Stage 7: the comparison table on stderr. */
export function printTable(s: DemoSummary, say: (l: string) => void): void {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
  say('');
  say(`fedmark demo — ${s.model} on ${s.dataset}, ${s.partners} partners, ${s.rounds} rounds, backend ${s.backend}`);
  say('training                      | AUC on the pooled hold-out');
  say('------------------------------+---------------------------');
  say(
    `federated (${s.encryption.scheme}${s.privacy ? `, DP ε≤${s.privacy.targetEpsilon}` : ''})`.padEnd(30) +
      `| ${f(s.auc.federated)}  (from encrypted histograms: ${f(s.auc.federatedFromHistograms)})`,
  );
  say('centralized (pooled, no DP)'.padEnd(30) + `| ${f(s.auc.centralized)}`);
  for (const [name, a] of Object.entries(s.auc.local)) say(`${name} alone (no DP)`.padEnd(30) + `| ${f(a)}`);
  if (s.privacy)
    say(
      `ε spent per partner (δ=${s.privacy.delta}, target ${s.privacy.targetEpsilon}): ${Object.entries(s.privacy.epsilon)
        .map(([n, e]) => `${n} ${ceilTo(e, 3)}`)
        .join(', ')}`,
    );
  else say(`privacy: ${NOT_DP}: the job ran without DP, nothing bounds what it reveals about a partner's customers`);
  say(`audit: ${s.audit.ok ? 'OK' : `${s.audit.findings.length} finding(s)`}; report ${s.report}`);
  say(`wire size: ${f(s.encryption.wireBytesPerParameter)} bytes per uploaded value; wall time ${s.wallSeconds.toFixed(1)} s; artifacts in ${s.out}`);
}
