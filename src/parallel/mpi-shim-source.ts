/**
 * The C shim between kiln and Open MPI (or any MPI): plain-int / pointer functions over MPI_COMM_WORLD, so the FFI
 * never sees MPI's handle macros. Compiled at first use by `mpi.ts` (mpicc) into the kiln cache.
 */
export const MPI_SHIM_SOURCE = `#include <mpi.h>
#include <stdint.h>

/* collectives run on the tensor-parallel group (all ranks until kiln_mpi_group splits it); send / recv on the world */
static MPI_Comm kiln_group = MPI_COMM_NULL;
static MPI_Comm group(void) { return kiln_group == MPI_COMM_NULL ? MPI_COMM_WORLD : kiln_group; }
int kiln_mpi_group(int color, int key) { return MPI_Comm_split(MPI_COMM_WORLD, color, key, &kiln_group); }

int kiln_mpi_init(void) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) return 0;
  int provided = 0;
  return MPI_Init_thread(0, 0, MPI_THREAD_SINGLE, &provided);
}
int kiln_mpi_rank(void) { int r = -1; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int kiln_mpi_size(void) { int n = -1; MPI_Comm_size(MPI_COMM_WORLD, &n); return n; }
int kiln_mpi_allreduce_f32(float *buf, int64_t n) {
  return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, group());
}
int kiln_mpi_allreduce_f64(double *buf, int64_t n) {
  return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, group());
}
int kiln_mpi_allgather_f32(const float *send, int64_t n, float *recv) {
  return MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, group());
}
int kiln_mpi_allgather_f64(const double *send, int64_t n, double *recv) {
  return MPI_Allgather(send, (int)n, MPI_DOUBLE, recv, (int)n, MPI_DOUBLE, group());
}
int kiln_mpi_send_f64(const double *buf, int64_t n, int dest, int tag) {
  return MPI_Send(buf, (int)n, MPI_DOUBLE, dest, tag, MPI_COMM_WORLD);
}
int kiln_mpi_recv_f64(double *buf, int64_t n, int src, int tag) {
  return MPI_Recv(buf, (int)n, MPI_DOUBLE, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}
int kiln_mpi_bcast_f64(double *buf, int64_t n, int root) {
  return MPI_Bcast(buf, (int)n, MPI_DOUBLE, root, MPI_COMM_WORLD);
}
double kiln_mpi_wtime(void) { return MPI_Wtime(); }
int kiln_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
int kiln_mpi_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  return fin ? 0 : MPI_Finalize();
}
`;
