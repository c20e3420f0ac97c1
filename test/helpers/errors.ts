import { expect } from 'vitest';
import { VerifyError } from '../../ir/errors.js';

/** The VerifyError `fn` throws, checked to be located at a node that its message names. */
export function verifyError(fn: () => unknown): VerifyError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    const err = e as VerifyError;
    expect(err.location.node).toBeDefined();
    expect(err.message).toContain(`node '${err.location.node}'`);
    return err;
  }
  throw new Error('expected a VerifyError');
}
