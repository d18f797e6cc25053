import { subsetDataset, type Dataset } from '../../src/data/encode.ts';
import type { PartnerContext } from './context.ts';

/** Between rounds: drops the rows of customers who withdrew consent since the last round, and records it. */
export function applyWithdrawals(ctx: PartnerContext): void {
  const withdrawn = ctx.o.withdrawnIds?.();
  const { train, test } = ctx.data;
  if (!withdrawn || withdrawn.size === 0 || !train.ids || !test.ids) return;
  const keep = (ds: Dataset) => {
    const idx: number[] = [];
    const gone: string[] = [];
    ds.ids!.forEach((id, i) => (withdrawn.has(id) ? gone.push(id) : idx.push(i)));
    return { ds: gone.length ? subsetDataset(ds, idx) : ds, gone };
  };
  const a = keep(train);
  const b = keep(test);
  const gone = [...a.gone, ...b.gone];
  if (!gone.length) return;
  ctx.data = { train: a.ds, test: b.ds, totalWithdrawn: ctx.data.totalWithdrawn + gone.length };
  ctx.runtime.replaceData(ctx.data.train, ctx.data.test);
  ctx.ledger.consentWithdrawal(gone, ctx.data.totalWithdrawn);
  ctx.log.warn({ rows: gone.length, totalWithdrawn: ctx.data.totalWithdrawn }, 'consent withdrawn: rows excluded from this round on');
}
