/* A minimal real MPI program: every rank reports its rank, the world size and the host it runs on.
 * Build: mpicc -o mpi_hello examples/mpi_hello.c
 * Run:   slurmkit submit -N 2 --launcher mpirun -- ./mpi_hello */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    int rank, size, len;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    /* A collective, so the ranks really talk to each other across nodes. */
    int sum = 0;
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("mpi rank %d/%d on %s allreduce %d\n", rank, size, host, sum);
    MPI_Finalize();
    return 0;
}
