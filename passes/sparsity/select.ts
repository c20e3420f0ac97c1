/** Dense vs sparse layout choice per matmul by a cost model (issue 14). */
export {};
