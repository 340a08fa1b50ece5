/* C floor for benchmarks/bench_events.py: drain a ring buffer or perf buffer with libbpf.
 *
 *   events_floor ring|perf MAP_FD PROG_FD RECORDS REPS PAGES
 *   events_floor stream-ring|stream-perf MAP_FD PROG_FD CHUNK SECONDS PAGES
 *
 * The maps and the producer program (an XDP program emitting one record per run) come from
 * the Python benchmark as inherited fds, so C and Python measure the very same producer.
 * Each repetition fills the buffer with RECORDS records (BPF_PROG_TEST_RUN, repeat=RECORDS),
 * then times how long libbpf's poll loop takes to hand them all to a callback that counts
 * them and sums their sizes (the same work the Python callbacks do).  Prints one line per
 * repetition: "<records> <seconds>".
 *
 * The stream modes run the producer concurrently instead: a thread runs the program with
 * repeat=CHUNK in a loop for SECONDS while the main thread polls; then the rest is drained.
 * Prints "<records received> <seconds>"; the caller reads produced/dropped from the
 * producer's counter map.
 */
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static unsigned long long count, bytes;

static int ring_cb(void *ctx, void *data, size_t size)
{
    count++;
    bytes += size;
    return 0;
}

static void perf_cb(void *ctx, int cpu, void *data, __u32 size)
{
    count++;
    bytes += size;
}

static void lost_cb(void *ctx, int cpu, __u64 n)
{
    fprintf(stderr, "lost %llu on cpu %d\n", (unsigned long long)n, cpu);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fill(int prog_fd, unsigned int n)
{
    char data[64] = {0};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = sizeof(data),
                .repeat = n);
    return bpf_prog_test_run_opts(prog_fd, &opts);
}

static volatile int producing;
static int stream_prog_fd;
static unsigned int stream_chunk;

static void *producer(void *arg)
{
    while (producing)
        if (fill(stream_prog_fd, stream_chunk))
            break;
    return NULL;
}

static int stream(int perf, int map_fd, int prog_fd, unsigned int chunk, double seconds,
                  size_t pages)
{
    struct ring_buffer *rb = NULL;
    struct perf_buffer *pb = NULL;
    pthread_t th;
    double t0, t1;

    if (perf)
        pb = perf_buffer__new(map_fd, pages, perf_cb, NULL, NULL, NULL);
    else
        rb = ring_buffer__new(map_fd, ring_cb, NULL, NULL);
    if (!rb && !pb)
        return 1;
    stream_prog_fd = prog_fd;
    stream_chunk = chunk;
    producing = 1;
    count = 0;
    t0 = now();
    pthread_create(&th, NULL, producer, NULL);
    while (now() - t0 < seconds)
        perf ? perf_buffer__poll(pb, 100) : ring_buffer__poll(rb, 100);
    producing = 0;
    pthread_join(th, NULL);
    /* drain what is left */
    while ((perf ? perf_buffer__poll(pb, 50) : ring_buffer__poll(rb, 50)) > 0)
        ;
    t1 = now();
    printf("%llu %.9f\n", count, t1 - t0);
    ring_buffer__free(rb);
    perf_buffer__free(pb);
    return 0;
}

int main(int argc, char **argv)
{
    struct ring_buffer *rb = NULL;
    struct perf_buffer *pb = NULL;
    int map_fd, prog_fd, reps, i, perf;
    unsigned long long records;
    size_t pages;

    if (argc != 7) {
        fprintf(stderr, "usage: %s ring|perf MAP_FD PROG_FD RECORDS REPS PAGES\n", argv[0]);
        return 2;
    }
    if (strncmp(argv[1], "stream-", 7) == 0)
        return stream(strcmp(argv[1], "stream-perf") == 0, atoi(argv[2]), atoi(argv[3]),
                      (unsigned int)atoi(argv[4]), atof(argv[5]), strtoul(argv[6], NULL, 10));
    perf = strcmp(argv[1], "perf") == 0;
    map_fd = atoi(argv[2]);
    prog_fd = atoi(argv[3]);
    records = strtoull(argv[4], NULL, 10);
    reps = atoi(argv[5]);
    pages = strtoul(argv[6], NULL, 10);
    if (perf)
        pb = perf_buffer__new(map_fd, pages, perf_cb, lost_cb, NULL, NULL);
    else
        rb = ring_buffer__new(map_fd, ring_cb, NULL, NULL);
    if (!rb && !pb) {
        fprintf(stderr, "reader: %s\n", strerror(errno));
        return 1;
    }
    for (i = 0; i < reps; i++) {
        double t0, t1;

        if (fill(prog_fd, (unsigned int)records)) {
            fprintf(stderr, "test_run: %s\n", strerror(errno));
            return 1;
        }
        count = 0;
        t0 = now();
        while (count < records) {
            int r = perf ? perf_buffer__poll(pb, 1000) : ring_buffer__poll(rb, 1000);
            if (r < 0 && r != -EINTR) {
                fprintf(stderr, "poll: %d\n", r);
                return 1;
            }
            if (r == 0) {
                fprintf(stderr, "timeout with %llu of %llu\n", count, records);
                return 1;
            }
        }
        t1 = now();
        printf("%llu %.9f\n", count, t1 - t0);
        fflush(stdout);
    }
    ring_buffer__free(rb);
    perf_buffer__free(pb);
    return 0;
}
