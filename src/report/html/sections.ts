import { describeModelSpec, escapeHtml, finalEpsilon, fmt, fmtDelta, fmtEpsilon, fmtInt, fmtPct, NOT_DP } from '../format.ts';

const capitalized = (s: string) => s[0].toUpperCase() + s.slice(1);
import type { ReportInput } from '../schema.ts';
import { pill, table } from './components.ts';

/** The report's sections, each from the validated input and the figures several sections share. */

export interface Derived {
  input: ReportInput;
  job: ReportInput['job'];
  ev: ReportInput['evaluation'];
  generatedAt: string;
  top: ReportInput['evaluation']['lift'][number] | undefined;
  privacyRows: { p: ReportInput['privacy'][number]; eps: number; over: boolean; share: number }[];
  maxEps: number;
  overBudget: Derived['privacyRows'];
  flaggedGroups: { s: ReportInput['evaluation']['segments'][number]; g: ReportInput['evaluation']['segments'][number]['groups'][number] }[];
  totalUsed: number;
  totalConsent: number;
  totalWithdrawn: number;
}

export function derive(input: ReportInput, generatedAt: string): Derived {
  const { job, evaluation: ev } = input;
  const top = ev.lift[0];
  const privacyRows = input.privacy.map((p) => {
    const eps = finalEpsilon(p.epsilonByRound);
    return { p, eps, over: eps > p.maxEpsilon, share: eps / p.maxEpsilon };
  });
  const maxEps = privacyRows.reduce((m, r) => Math.max(m, r.eps), 0);
  const overBudget = privacyRows.filter((r) => r.over);
  const flaggedGroups = ev.segments.flatMap((s) => s.groups.filter((g) => g.flagged).map((g) => ({ s, g })));
  const totalUsed = input.partners.reduce((a, p) => a + p.rowsUsed, 0);
  const totalConsent = input.partners.reduce((a, p) => a + p.rowsExcludedConsent, 0);
  const totalWithdrawn = input.partners.reduce((a, p) => a + p.rowsExcludedWithdrawn, 0);
  return { input, job, ev, generatedAt, top, privacyRows, maxEps, overBudget, flaggedGroups, totalUsed, totalConsent, totalWithdrawn };
}

/** The header badges: audit, encryption, ε budgets, fairness. */
export function badgeList(d: Derived): string[] {
  const { input, ev, overBudget, flaggedGroups } = d;
  const badges: string[] = [];
  if (input.audit) {
    badges.push(
      input.audit.ok
        ? '<span class="badge ok">Audit: ledger verified</span>'
        : `<span class="badge bad">Audit: ${input.audit.findings.length} finding(s)</span>`,
    );
  } else badges.push('<span class="badge warn">Audit: not attached</span>');
  badges.push(
    input.encryption.scheme === 'ckks'
      ? '<span class="badge ok">Updates CKKS-encrypted</span>'
      : input.encryption.scheme === 'secagg-bfv'
        ? '<span class="badge ok">Updates masked inside BFV</span>'
        : '<span class="badge bad">Updates NOT encrypted (plain-insecure)</span>',
  );
  badges.push(
    !input.differentiallyPrivate
      ? `<span class="badge bad">${escapeHtml(capitalized(NOT_DP))}</span>`
      : overBudget.length
        ? `<span class="badge bad">ε budget exceeded by ${overBudget.length} partner(s)</span>`
        : '<span class="badge ok">All partners within ε budget</span>',
  );
  badges.push(
    flaggedGroups.length
      ? `<span class="badge warn">Fairness: ${flaggedGroups.length} group(s) below four-fifths</span>`
      : `<span class="badge ok">Fairness: ${ev.segments.length ? 'no group below four-fifths' : 'no segments declared'}</span>`,
  );
  return badges;
}

/** The key figures strip. */
export function kpiStrip(d: Derived): string {
  const { input, ev, top, maxEps, totalUsed } = d;
  const kpis = [
    ['Final AUC', 'final-auc', fmt(ev.auc, 4), `n = ${fmtInt(ev.n)} hold-out rows`],
    ['Log loss', 'final-logloss', fmt(ev.logLoss, 4), `Brier <span id="final-brier">${escapeHtml(fmt(ev.brier, 4))}</span>`],
    ['Top-decile lift', 'top-decile-lift', top ? fmt(top.cumulativeLift, 2) : 'n/a', `captures ${escapeHtml(top ? fmtPct(top.gain) : 'n/a')} of positives`],
    input.differentiallyPrivate
      ? ['Max ε spent', 'max-epsilon', fmtEpsilon(maxEps), 'rounded up, any partner']
      : ['Max ε spent', 'max-epsilon', fmtEpsilon(Infinity), 'not differentially private'],
    ['Rows used', 'total-rows', fmtInt(totalUsed), `${input.partners.length} partners`],
  ]
    .map(
      ([label, id, value, sub]) =>
        `<div class="kpi"><div class="label">${escapeHtml(label)}</div><div class="value" id="${id}">${escapeHtml(value)}</div><div class="sub">${sub}</div></div>`,
    )
    .join('');
  return kpis;
}

/** Job summary facts. */
export function jobFactList(d: Derived): [string, string][] {
  const { job, generatedAt } = d;
  const jobFacts: [string, string][] = [
    ['Job id', job.jobId],
    ['Dataset', job.dataset],
    ['Model', describeModelSpec(job.modelSpec)],
    ['Rounds', String(job.rounds)],
    ['Strategy', job.strategy],
    ['Created', job.createdAt],
    ['Finished', job.finishedAt ?? 'not finished'],
    ...(job.owner ? ([['Owner', job.owner]] as [string, string][]) : []),
    ['Report generated', generatedAt],
  ];
  return jobFacts;
}

/** Partners and consent. */
export function partnersSection(d: Derived): string {
  const { input, totalUsed, totalConsent, totalWithdrawn } = d;
  const partnersTable = table(
    ['Partner', 'Key id', 'Rows used', 'Excluded: no consent', 'Excluded: withdrawn'],
    [
      ...input.partners.map((p) => [
        escapeHtml(p.name),
        escapeHtml(p.keyId),
        escapeHtml(fmtInt(p.rowsUsed)),
        escapeHtml(fmtInt(p.rowsExcludedConsent)),
        escapeHtml(fmtInt(p.rowsExcludedWithdrawn)),
      ]),
      ['<strong>Total</strong>', '', escapeHtml(fmtInt(totalUsed)), escapeHtml(fmtInt(totalConsent)), escapeHtml(fmtInt(totalWithdrawn))],
    ],
    { numeric: [false, false, true, true, true], mono: [false, true], raw: true },
  );
  return partnersTable;
}

/** Differential privacy: the per-partner table, and the partners with no accounting. */
export function privacySection(d: Derived): { privacyTable: string; missingPrivacy: ReportInput['partners'] } {
  const { input, privacyRows } = d;
  const privacyTable = table(
    ['Partner', 'ε spent', 'δ', 'ε budget', 'Budget used', 'Noise σ', 'Clip C', 'Accountant', 'Status'],
    privacyRows.map(({ p, eps, over, share }) => [
      escapeHtml(p.partner),
      escapeHtml(fmtEpsilon(eps)),
      escapeHtml(fmtDelta(p.delta)),
      escapeHtml(fmtEpsilon(p.maxEpsilon)),
      escapeHtml(fmtPct(share)),
      escapeHtml(p.noiseMultiplier !== undefined ? fmt(p.noiseMultiplier, 3) : '—'),
      escapeHtml(p.clipNorm !== undefined ? fmt(p.clipNorm, 3) : '—'),
      escapeHtml(p.accountant ?? '—'),
      over ? pill('bad', 'over budget') : share > 0.9 ? pill('warn', 'near budget') : pill('ok', 'within budget'),
    ]),
    { numeric: [false, true, true, true, true, true, true, false, false], raw: true },
  );
  const missingPrivacy = input.partners.filter((p) => !input.privacy.some((q) => q.partner === p.name));
  return { privacyTable, missingPrivacy };
}

/** Fairness by segment. */
export function fairnessSection(d: Derived): string {
  const { ev, flaggedGroups } = d;
  const fairnessRows: { html: string[]; flagged: boolean }[] = [];
  for (const seg of ev.segments) {
    for (const g of seg.groups) {
      const status = g.flagged
        ? pill('warn', 'below 0.8')
        : Number.isFinite(g.disparateImpact)
          ? pill('ok', g.group === seg.referenceGroup ? 'reference' : 'ok')
          : pill('na', 'n/a');
      fairnessRows.push({
        flagged: g.flagged,
        html: [
          escapeHtml(seg.segment),
          escapeHtml(g.group),
          escapeHtml(fmtInt(g.count)),
          escapeHtml(fmtPct(g.baseRate)),
          escapeHtml(fmtPct(g.selectionRate)),
          escapeHtml(fmtPct(g.tpr)),
          escapeHtml(fmtPct(g.fpr)),
          escapeHtml(fmt(g.auc, 3)),
          `<strong>${escapeHtml(fmt(g.disparateImpact, 2))}</strong>`,
          status,
        ],
      });
    }
  }
  const html = ev.segments.length
    ? `${
        flaggedGroups.length
          ? `<div class="callout"><strong>Warning:</strong> ${flaggedGroups.length} group(s) have a selection rate below 80 % of the best-treated group in their segment: ${flaggedGroups
              .map(({ s, g }) => `${escapeHtml(s.segment)} = ${escapeHtml(g.group)} (${escapeHtml(fmt(g.disparateImpact, 2))})`)
              .join('; ')}. Review before deployment.</div>`
          : '<div class="callout ok">No group falls below the four-fifths threshold.</div>'
      }${table(
        ['Segment', 'Group', 'Rows', 'Base rate', 'Selected', 'TPR', 'FPR', 'AUC', 'Disparate impact', 'Four-fifths'],
        fairnessRows.map((r) => r.html),
        { numeric: [false, false, true, true, true, true, true, true, true, false], raw: true, rowClass: (i) => (fairnessRows[i].flagged ? 'flagged' : '') },
      )}<p class="note">Selected = share scored at or above ${escapeHtml(fmt(ev.threshold, 2))}. Disparate impact = a group’s selection rate ÷ the highest selection rate in its segment; below 0.8 fails the four-fifths screen (29 C.F.R. § 1607.4(D)). Rates are exact; per-group AUC is binned (${ev.bins} bins).</p>`
    : '<p>No sensitive segments were declared for this job, so no fairness metrics were computed.</p>';
  return html;
}

/** The lift table. */
export function liftSection(d: Derived): string {
  const { ev } = d;
  const liftTable = table(
    ['Top share', 'Rows', 'Positives', 'Response rate', 'Lift', 'Cumulative lift', 'Cumulative gain'],
    ev.lift.map((r) => [
      fmtPct(r.fraction, 0),
      fmtInt(r.count),
      fmt(r.positives, 1),
      fmtPct(r.responseRate),
      fmt(r.lift, 2),
      fmt(r.cumulativeLift, 2),
      fmtPct(r.gain),
    ]),
    { numeric: [false, true, true, true, true, true, true] },
  );
  return liftTable;
}

/** Encryption parameters. */
export function encryptionFacts(d: Derived): [string, string][] {
  const { input } = d;
  const enc = input.encryption;
  const encFacts: [string, string][] = [
    [
      'Scheme',
      enc.scheme === 'ckks'
        ? 'CKKS (node-seal / Microsoft SEAL)'
        : enc.scheme === 'secagg-bfv'
          ? 'pairwise masking (Bonawitz et al. 2017) inside BFV (node-seal / Microsoft SEAL)'
          : 'plain-insecure (no encryption)',
    ],
    ['Polynomial modulus degree N', fmtInt(enc.polyModulusDegree)],
    ['Coefficient modulus bits', `[${enc.coeffModulusBits.join(', ')}] (total ${enc.coeffModulusBits.reduce((a, b) => a + b, 0)})`],
    ...(enc.scaleBits !== undefined ? ([['Scale', `2^${enc.scaleBits}`]] as [string, string][]) : []),
    ...(enc.securityLevel !== undefined ? ([['Security level', `${enc.securityLevel}-bit`]] as [string, string][]) : []),
    ['Wire size', `${fmt(enc.bytesPerParam, 2)} bytes per parameter`],
  ];
  return encFacts;
}

/** The audit result. */
export function auditSection(d: Derived): string {
  const { input } = d;
  let auditHtml: string;
  if (!input.audit) {
    auditHtml =
      '<div class="callout">No audit result is attached. Run <code>fedmark audit</code> on the ledger to verify the hash chain, signatures and ε.</div>';
  } else {
    const a = input.audit;
    auditHtml = `${
      a.ok
        ? '<div class="callout ok"><strong>Ledger verified:</strong> hash chain, signatures and recomputed ε all agree.</div>'
        : `<div class="callout bad"><strong>Audit failed:</strong> ${a.findings.length} finding(s).</div>`
    }${
      a.summary
        ? `<dl class="facts">${Object.entries(a.summary)
            .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(String(v))}</dd>`)
            .join('')}</dl>`
        : ''
    }${
      a.findings.length
        ? `<h3>Findings</h3>${table(
            ['Entry', 'Code', 'Message'],
            a.findings.map((f) => [f.entry !== undefined ? String(f.entry) : '—', f.code, f.message]),
            { numeric: [true, false, false] },
          )}`
        : ''
    }`;
  }
  return auditHtml;
}
