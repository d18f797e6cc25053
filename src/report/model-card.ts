/**
 * The model card (after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019): built once as
 * a small document tree, then written as Markdown (`renderModelCard`) and as HTML (embedded in the
 * compliance report), so the two can never say different things.
 */
import { describeModelSpec, escapeHtml, escapeMarkdown, finalEpsilon, fmt, fmtDelta, fmtEpsilon, fmtInt, fmtPct, NOT_DP } from './format.ts';
import { parseReportInput, type ReportInput, type ReportInputDraft } from './schema.ts';

export type CardBlock =
  { kind: 'p'; text: string } | { kind: 'ul'; items: string[] } | { kind: 'table'; head: string[]; rows: string[][]; numeric?: boolean[] };

export interface CardSection {
  title: string;
  blocks: CardBlock[];
}

export interface CardDocument {
  title: string;
  subtitle: string;
  sections: CardSection[];
}

/** Limitations that hold for every fedmark model, appended to the job owner's own list. */
const BUILT_IN_LIMITATIONS = [
  'Metrics come from fixed-bin score histograms summed across partners: AUC and calibration are exact up to the bin width (ties within a bin count ½); log loss and Brier are exact.',
  'The evaluation sample is the union of the partners’ hold-out sets; it reflects their customer bases, not necessarily the population the model will be applied to.',
  'Disparate impact (four-fifths rule) is a screening statistic at one threshold; it does not establish or exclude discrimination.',
  'Differential privacy protects individual records in each partner’s training data against inference from the released model; it does not make the model’s predictions fair or accurate for small groups.',
];

export function buildModelCard(input: ReportInput): CardDocument {
  const { job, evaluation: ev, modelCard: mc } = input;
  const top = ev.lift[0];
  const privacyByName = new Map(input.privacy.map((p) => [p.partner, p]));
  const sections: CardSection[] = [];

  sections.push({
    title: 'Model details',
    blocks: [
      {
        kind: 'ul',
        items: [
          `Model: ${describeModelSpec(job.modelSpec)}`,
          `Training: federated learning over ${job.rounds} rounds with ${job.strategy}, ${input.partners.length} partners`,
          `Update protection: ${
            input.encryption.scheme === 'ckks'
              ? `CKKS homomorphic encryption (N = ${input.encryption.polyModulusDegree}); the coordinator only ever held encrypted sums`
              : input.encryption.scheme === 'secagg-bfv'
                ? `pairwise masking with dropout recovery inside BFV (N = ${input.encryption.polyModulusDegree}); the coordinator only ever held encrypted sums, and no coalition of it with fewer than t partners can read one partner's upload`
                : 'NONE (plain-insecure mode: the coordinator saw individual updates)'
          }`,
          `Job: ${job.jobId}, created ${job.createdAt}${job.finishedAt ? `, finished ${job.finishedAt}` : ''}`,
          ...(job.owner ? [`Owner: ${job.owner}`] : []),
          ...(mc.version ? [`Version: ${mc.version}`] : []),
        ],
      },
    ],
  });

  sections.push({
    title: 'Intended use',
    blocks: [
      { kind: 'p', text: mc.intendedUse },
      ...(mc.outOfScope.length
        ? [
            { kind: 'p' as const, text: 'Out of scope:' },
            { kind: 'ul' as const, items: mc.outOfScope },
          ]
        : []),
    ],
  });

  const totalUsed = input.partners.reduce((a, p) => a + p.rowsUsed, 0);
  sections.push({
    title: 'Data',
    blocks: [
      {
        kind: 'p',
        text: `Dataset: ${job.dataset}. Target: ${mc.target}. ${mc.trainingData ?? ''}`.trim(),
      },
      {
        kind: 'table',
        head: ['Partner', 'Rows used', 'Excluded (no consent)', 'Excluded (withdrawn)'],
        numeric: [false, true, true, true],
        rows: [
          ...input.partners.map((p) => [p.name, fmtInt(p.rowsUsed), fmtInt(p.rowsExcludedConsent), fmtInt(p.rowsExcludedWithdrawn)]),
          [
            'Total',
            fmtInt(totalUsed),
            fmtInt(input.partners.reduce((a, p) => a + p.rowsExcludedConsent, 0)),
            fmtInt(input.partners.reduce((a, p) => a + p.rowsExcludedWithdrawn, 0)),
          ],
        ],
      },
    ],
  });

  sections.push({ title: 'Features', blocks: [{ kind: 'ul', items: mc.features }] });
  if (input.featureImportance) sections.push(importanceSection(input.featureImportance));

  sections.push({
    title: 'Metrics',
    blocks: [
      {
        kind: 'p',
        text: `Federated evaluation on the partners’ hold-out data (n = ${fmtInt(ev.n)}, ${fmtInt(ev.positives)} positives, base rate ${fmtPct(ev.baseRate)}), computed from ${ev.bins}-bin score histograms summed under encryption.`,
      },
      {
        kind: 'table',
        head: ['Metric', 'Value'],
        numeric: [false, true],
        rows: [
          ['ROC AUC', fmt(ev.auc, 4)],
          ['Log loss', fmt(ev.logLoss, 4)],
          ['Brier score', fmt(ev.brier, 4)],
          [`Accuracy at threshold ${fmt(ev.threshold, 2)}`, fmtPct(ev.accuracy)],
          ['Lift in top decile', top ? fmt(top.cumulativeLift, 2) : 'n/a'],
          ['Positives captured in top decile', top ? fmtPct(top.gain) : 'n/a'],
        ],
      },
    ],
  });

  const fairnessRows: string[][] = [];
  for (const seg of ev.segments) {
    for (const g of seg.groups) {
      fairnessRows.push([
        seg.segment,
        g.group,
        fmtInt(g.count),
        fmtPct(g.baseRate),
        fmtPct(g.selectionRate),
        fmtPct(g.tpr),
        fmtPct(g.fpr),
        fmt(g.auc, 3),
        fmt(g.disparateImpact, 2),
        g.flagged ? 'below 0.8' : Number.isFinite(g.disparateImpact) ? 'ok' : 'n/a',
      ]);
    }
  }
  const flagged = ev.segments.flatMap((s) => s.groups.filter((g) => g.flagged).map((g) => `${s.segment} = ${g.group}`));
  sections.push({
    title: 'Fairness',
    blocks: ev.segments.length
      ? [
          {
            kind: 'p',
            text: `Per-segment rates at threshold ${fmt(ev.threshold, 2)}. Disparate impact is each group’s selection rate divided by that of the most-selected group in its segment; values below 0.8 fail the four-fifths screen.`,
          },
          {
            kind: 'table',
            head: ['Segment', 'Group', 'Rows', 'Base rate', 'Selected', 'TPR', 'FPR', 'AUC', 'Disparate impact', 'Four-fifths'],
            numeric: [false, false, true, true, true, true, true, true, true, false],
            rows: fairnessRows,
          },
          {
            kind: 'p',
            text: flagged.length
              ? `Warning: ${flagged.length} group(s) below the four-fifths threshold: ${flagged.join('; ')}.`
              : 'No group is below the four-fifths threshold.',
          },
        ]
      : [{ kind: 'p', text: 'No sensitive segments were declared for this job, so no fairness metrics were computed.' }],
  });

  sections.push({
    title: 'Privacy guarantees',
    blocks: input.differentiallyPrivate
      ? [
          {
            kind: 'p',
            text: `${
              typeof job.modelSpec === 'object' && job.modelSpec.kind === 'gbdt'
                ? 'Each partner added calibrated Gaussian noise to every statistic it released (bin-edge counts, clipped gradient and hessian histograms, leaf and term sums)'
                : 'Each partner trained with DP-SGD (per-example clipping and Gaussian noise)'
            } and tracked its own privacy loss. The model released after the final round satisfies (ε, δ)-differential privacy with respect to each partner’s records at the values below (ε rounded up).`,
          },
          {
            kind: 'table',
            head: ['Partner', 'ε spent', 'δ', 'ε budget', 'Budget used'],
            numeric: [false, true, true, true, true],
            rows: input.partners.map((p) => {
              const pr = privacyByName.get(p.name);
              if (!pr) return [p.name, 'not reported', 'n/a', 'n/a', 'n/a'];
              const eps = finalEpsilon(pr.epsilonByRound);
              return [p.name, fmtEpsilon(eps), fmtDelta(pr.delta), fmtEpsilon(pr.maxEpsilon), fmtPct(eps / pr.maxEpsilon)];
            }),
          },
        ]
      : [
          {
            kind: 'p',
            text: `This model was trained without differential privacy: it is ${NOT_DP}. Partners released their updates without clipping or noise, so nothing bounds what the model, the aggregated updates or the metrics reveal about any partner’s customers. The updates were only protected in transit and from the coordinator by encryption.`,
          },
          {
            kind: 'table',
            head: ['Partner', 'ε spent', 'δ', 'ε budget', 'Budget used'],
            numeric: [false, true, true, true, true],
            rows: input.partners.map((p) => [p.name, '∞ (not DP)', 'n/a', 'n/a', 'n/a']),
          },
        ],
  });

  sections.push({ title: 'Limitations', blocks: [{ kind: 'ul', items: [...mc.limitations, ...BUILT_IN_LIMITATIONS] }] });
  if (mc.ethicalConsiderations.length) {
    sections.push({ title: 'Ethical considerations', blocks: [{ kind: 'ul', items: mc.ethicalConsiderations }] });
  }

  return {
    title: `Model card — ${job.jobId}`,
    subtitle: `Generated by fedmark ${input.generatedAt ?? ''}`.trim(),
    sections,
  };
}

/** The released model's importance per column, largest first (gains from the released, noised sums: no ε). */
function importanceSection(fi: NonNullable<ReportInput['featureImportance']>): CardSection {
  return {
    title: 'Feature importance',
    blocks: [
      {
        kind: 'p',
        text: `Importance by ${fi.measure} of each column's splits and terms, summed over its encoded features. The gains are computed from the statistics the model was built from — under differential privacy, the noised sums every partner released — so they are post-processing of released values and cost no further ε; they are an aggregate per column, not per node.`,
      },
      {
        kind: 'table',
        head: ['Feature', fi.measure === 'total gain' ? 'Total gain' : fi.measure, 'Share'],
        numeric: [false, true, true],
        rows: fi.rows.map((r) => [r.feature, fmt(r.gain, 2), fmtPct(r.share)]),
      },
    ],
  };
}

export function cardToMarkdown(doc: CardDocument): string {
  const out: string[] = [`# ${escapeMarkdown(doc.title)}`, '', `_${escapeMarkdown(doc.subtitle)}_`, ''];
  for (const s of doc.sections) {
    out.push(`## ${escapeMarkdown(s.title)}`, '');
    for (const b of s.blocks) {
      if (b.kind === 'p') out.push(escapeMarkdown(b.text), '');
      else if (b.kind === 'ul') out.push(...b.items.map((i) => `- ${escapeMarkdown(i)}`), '');
      else {
        out.push(`| ${b.head.map((c) => escapeMarkdown(c, false)).join(' | ')} |`);
        out.push(`|${b.head.map((_, i) => (b.numeric?.[i] ? ' ---: ' : ' --- ')).join('|')}|`);
        for (const r of b.rows) out.push(`| ${r.map((c) => escapeMarkdown(c, false)).join(' | ')} |`);
        out.push('');
      }
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

export function cardToHtml(doc: CardDocument, headingLevel = 3): string {
  const h = `h${headingLevel}`;
  const parts: string[] = [];
  for (const s of doc.sections) {
    parts.push(`<${h}>${escapeHtml(s.title)}</${h}>`);
    for (const b of s.blocks) {
      if (b.kind === 'p') parts.push(`<p>${escapeHtml(b.text)}</p>`);
      else if (b.kind === 'ul') parts.push(`<ul>${b.items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`);
      else {
        const cls = (i: number) => (b.numeric?.[i] ? ' class="num"' : '');
        parts.push(
          `<div class="table-wrap"><table><thead><tr>${b.head.map((c, i) => `<th${cls(i)}>${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${b.rows
            .map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${escapeHtml(c)}</td>`).join('')}</tr>`)
            .join('')}</tbody></table></div>`,
        );
      }
    }
  }
  return parts.join('\n');
}

/** The model card as Markdown. Validates `input` (throws FedmarkError REPORT_INVALID_INPUT). */
export function renderModelCard(input: ReportInputDraft | ReportInput): string {
  return cardToMarkdown(buildModelCard(parseReportInput(input)));
}
