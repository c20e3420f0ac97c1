/** kiln/codegen — kernel IR, lowering and renderers (to come). */
export {};
