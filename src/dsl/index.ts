/** kiln/dsl — scalar TypeScript functions as custom ops and fused epilogues (issue 16). */
export {};
