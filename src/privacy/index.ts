/** Public API of the privacy module (the ledger adds its own exports in its own file). */
export {
  DEFAULT_ORDERS,
  computeRdp,
  rdpToEpsilon,
  rdpOneStep,
  logAIntegerOrder,
  logAFractionalOrder,
  ndtr,
  logNdtr,
  erfc,
  logAdd,
  logSub,
} from './analysis/rdp.ts';
export { epsilonPld, PLD_DISCRETIZATION, type PldArgs } from './analysis/pld.ts';
export { dpEventSchema, validateDpEvent, dpEventOf, type DpEvent, type LabelledDpEvent, type ReleaseLabel } from './dp-event.ts';
export { RdpAccountant, epsilonFor, composedEpsilon, validateDelta, type Accountant, type AccountantKind, type RdpAccountantJson } from './accountant.ts';
export { calibrateNoiseMultiplier, MAX_NOISE_MULTIPLIER, type CalibrateArgs } from './calibrate.ts';
export { gaussianNoise, addGaussianNoiseInPlace } from './noise.ts';
export {
  policySchema,
  officerSchema,
  dualAuthorizationSchema,
  parsePolicy,
  loadPolicy,
  checkJob,
  verifyDualAuthorization,
  type PartnerPolicy,
  type JobRequest,
} from './policy.ts';
export * from './budget/index.ts';
