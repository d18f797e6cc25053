export { BudgetStore, type Spend } from './store.ts';
export type { BudgetGuard, BudgetVerdict } from './guard.ts';
export { PolicyBudgetGuard } from './policy-guard.ts';
export { MemoryBudgetGuard } from './memory-guard.ts';
