/** Tensor- and pipeline-parallel partitioning (issue 15). */
export { shardTensorParallel, shardTensorParallelRank, type TensorParallelOptions } from './tensor-parallel.js';
export {
  balanceLayers,
  equalLayers,
  graphLayers,
  layerWeightCosts,
  partitionPipeline,
  type PipelineStage,
} from './pipeline.js';
