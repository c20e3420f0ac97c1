/** The parallel runtime: collectives over MPI / NCCL, ranks, pipeline schedules (issue 15). */
export {};
