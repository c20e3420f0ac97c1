/** Importing this module registers every op. The registry is the one place an op is defined. */
import './elementwise.js';
import './reduce.js';
import './nn.js';
import './shape.js';
import './attention.js';
import './quant.js';
import './pad.js';
import './paged.js';
import './sample.js';
import './fused.js';
import './scatter.js';
import './conv.js';
import './blockq.js';
import './sparse.js';
import './collective.js';
import './ggml.js';
