/** com.microsoft quantized-weight converters: MatMulNBits, GatherBlockQuantized (issue-12 work). */
export {};
