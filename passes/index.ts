/** kiln/passes — the pass manager and passes (to come). */
export {};
