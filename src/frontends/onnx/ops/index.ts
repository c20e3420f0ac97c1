/** Importing this module registers every ONNX converter. */
import './elementwise.js';
import './reduce.js';
import './nn.js';
import './shape.js';
import './attention.js';
import './quant.js';
import './pad.js';
import './contrib.js';
import './contrib-attention.js';
import './standard-extra.js';
import './contrib-quant.js';
