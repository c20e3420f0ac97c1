/** Pruning passes (issue 14). */
export {};
