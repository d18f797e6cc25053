import type { CoordinatorClient } from './client.ts';
import { secaggRoutes, type SecaggPostStage, type SecaggView } from './secagg-routes.ts';

/** The nodes' side of masked aggregation's route family (./secagg-routes.ts), over the signed client. */
export function postSecagg(client: CoordinatorClient, jobId: string, round: number, stage: SecaggPostStage, attempt: number, message: object) {
  return client.call(secaggRoutes.secaggPost, { jobId, round, stage }, { body: { attempt, message: message as Record<string, unknown> } });
}

export async function secaggView(client: CoordinatorClient, jobId: string, round: number, attempt: number, view: SecaggView): Promise<unknown> {
  return (await client.call(secaggRoutes.secaggView, { jobId, round, attempt, view })).message;
}
