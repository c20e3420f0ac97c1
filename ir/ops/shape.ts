/**
 * Shape and data-movement ops: reshape, transpose, slice, concat, split, squeeze / unsqueeze, expand, tile, flatten,
 * gathers, range, trilu, shape / size and constants. Shape-like parameters that may be computed at run time are i64
 * inputs; inference reads them when they are constants and otherwise names the unknown dims after the node.
 */
import './shape/views.js';
import './shape/slice-concat.js';
import './shape/expand.js';
import './shape/gather.js';
import './shape/generators.js';

export { sliceRange } from './shape/slice-concat.js';
