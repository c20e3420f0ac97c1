/**
 * Typed, located errors. Every failure kiln reports on bad input is a KilnError subclass whose message names the
 * node / tensor / limit involved, so callers can branch on `code` and users can find the culprit.
 */
export type KilnErrorCode =
  'shape' | 'dtype' | 'verify' | 'unsupported' | 'parse' | 'decode' | 'attribute' | 'runtime' | 'limit' | 'device';

export interface ErrorLocation {
  /** Name of the node the error concerns. */
  node?: string;
  /** Op of that node. */
  op?: string;
  /** Name of the tensor / value the error concerns. */
  tensor?: string;
  /** A device or format limit that was exceeded. */
  limit?: string;
}

/**
 * The base of every error kiln raises on bad input: `code` says the kind, `location` the node / tensor / limit, and the
 * message ends with that location (`… [at node 'x' (matmul), tensor 'w']`).
 */
export class KilnError extends Error {
  readonly code: KilnErrorCode;
  readonly location: ErrorLocation;
  /** An error of kind `code`; the location is appended to `message`; `options.cause` keeps an underlying error. */
  constructor(code: KilnErrorCode, message: string, location: ErrorLocation = {}, options?: { cause?: unknown }) {
    super(formatMessage(message, location), options);
    this.name = 'KilnError';
    this.code = code;
    this.location = location;
  }
}

function formatMessage(message: string, loc: ErrorLocation): string {
  const parts: string[] = [];
  // A message that already names its node (e.g. ONNX import's "at node 'x'") is not repeated.
  if (loc.node !== undefined && message.includes(`'${loc.node}'`)) {
    /* already located */
  } else if (loc.node !== undefined) parts.push(`node '${loc.node}'${loc.op ? ` (${loc.op})` : ''}`);
  else if (loc.op !== undefined) parts.push(`op ${loc.op}`);
  if (loc.tensor !== undefined) parts.push(`tensor '${loc.tensor}'`);
  if (loc.limit !== undefined) parts.push(`limit ${loc.limit}`);
  return parts.length ? `${message} [at ${parts.join(', ')}]` : message;
}

/** Raised when an op, dtype or feature is not supported (by the IR, an importer or a backend). */
export class UnsupportedError extends KilnError {
  /** A KilnError with code `unsupported`. */
  constructor(message: string, location: ErrorLocation = {}) {
    super('unsupported', message, location);
    this.name = 'UnsupportedError';
  }
}

/** Raised for malformed bytes or text (ONNX protobuf, IR text). */
export class ParseError extends KilnError {
  /** A KilnError with code `parse`. */
  constructor(message: string, location: ErrorLocation = {}, options?: { cause?: unknown }) {
    super('parse', message, location, options);
    this.name = 'ParseError';
  }
}

/** Raised by shape / dtype inference and the verifier. */
export class VerifyError extends KilnError {
  /** A KilnError with code `verify`. */
  constructor(message: string, location: ErrorLocation = {}) {
    super('verify', message, location);
    this.name = 'VerifyError';
  }
}
