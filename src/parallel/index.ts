/**
 * The parallel runtime: collectives over MPI / NCCL, ranks, pipeline schedules, the all-ranks reference.
 *
 * @module kiln/parallel
 */
export { interpretRanks } from './interpret-ranks.js';
export { collectiveReference, COLLECTIVE_OPS } from '../../ir/ops/collective.js';
export { interpretPipeline } from './pipeline-reference.js';
export { interpretWithCollectives } from './interpret-ranks.js';
export { mpiWorld, mpiShimLibrary, type Mpi } from './mpi.js';
export {
  generateParallel,
  planRank,
  type ParallelLayout,
  type ParallelGenerateResult,
  type RankPlan,
  type RankPart,
} from './runtime.js';

export { simulatePipeline, type ScheduleResult } from './schedule.js';
export { checkNcclDeclarations, loadNccl, ncclCandidates, NCCL_PROTOTYPES, type Nccl } from './nccl.js';
export { cutAtCollectives, SegmentedRank, type CutStep, type Transport } from './segments.js';
export { generatePipelined, type PipelinedResult } from './pipelined.js';
