import { WorkloadRegistry } from '../workload.ts';
import { gbdtWorkload } from './gbdt/index.ts';
import { sgdWorkload } from './sgd/index.ts';
import { featureStatsWorkload } from './feature-stats/index.ts';
import { psiWorkload } from '../../vertical/jobs/psi-workload.ts';
import { secureBoostWorkload } from '../../vertical/jobs/secureboost-workload.ts';
import { verticalScoreWorkload } from '../../vertical/jobs/score-workload.ts';

/** The workloads this build runs. Another workload registers here (one line) or is passed to the nodes and simulate() as an option. */
export const builtinWorkloads = new WorkloadRegistry([
  sgdWorkload,
  gbdtWorkload,
  featureStatsWorkload,
  psiWorkload,
  secureBoostWorkload,
  verticalScoreWorkload,
]);

export { featureStatsWorkload, gbdtWorkload, sgdWorkload };
