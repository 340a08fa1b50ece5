/* The C floor for benchmarks/bench_maps.py: the same map operations through the same
 * vendored libbpf, timed the same way (monotonic clock around a loop over prepared keys).
 *
 * Usage: maps_floor <op> <map_fd> <n> <count> <iterations> [chunk]
 *   op: lookup | update | delete | next_key | dump_batch | fill_batch
 *   The keys are u32: key i (i < count) is ((i * 2654435761) mod 2^32) mod n, the same
 *   permutation the driver uses.
 * The map fd is inherited from the Python driver, so both sides work on the very same map.
 * Prints one line: "<op> <ns per element>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s op fd n count iters [chunk]\n", argv[0]);
        return 2;
    }
    const char *op = argv[1];
    int fd = atoi(argv[2]);
    uint32_t mod = (uint32_t)strtoul(argv[3], NULL, 10);
    uint32_t n = (uint32_t)strtoul(argv[4], NULL, 10);
    long iters = atol(argv[5]);
    uint32_t chunk = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 4096;
    struct bpf_map_info info = {0};
    __u32 len = sizeof(info);
    if (bpf_map_get_info_by_fd(fd, &info, &len)) {
        perror("map info");
        return 1;
    }
    int ncpu = libbpf_num_possible_cpus();
    size_t vs = info.value_size;
    if (info.type == BPF_MAP_TYPE_PERCPU_HASH || info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
        info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH)
        vs = ((vs + 7) / 8 * 8) * ncpu;
    uint32_t *keys = malloc(sizeof(uint32_t) * n);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = (uint32_t)(i * 2654435761u) % mod; /* same permutation as the driver */
    char *val = calloc(1, vs);
    double t0, t1;
    long done = 0;

    if (!strcmp(op, "lookup")) {
        t0 = now_ns();
        for (long it = 0; it < iters; it++)
            for (uint32_t i = 0; i < n; i++)
                if (bpf_map_lookup_elem(fd, &keys[i], val) == 0)
                    done++;
        t1 = now_ns();
        done = iters * (long)n;
    } else if (!strcmp(op, "update")) {
        t0 = now_ns();
        for (long it = 0; it < iters; it++)
            for (uint32_t i = 0; i < n; i++)
                bpf_map_update_elem(fd, &keys[i], val, BPF_ANY);
        t1 = now_ns();
        done = iters * (long)n;
    } else if (!strcmp(op, "delete")) {
        /* delete n keys (the driver refills between runs) */
        t0 = now_ns();
        for (uint32_t i = 0; i < n; i++)
            bpf_map_delete_elem(fd, &keys[i]);
        t1 = now_ns();
        done = n;
    } else if (!strcmp(op, "next_key")) {
        /* walk n steps from the first key */
        uint32_t k, nk;
        t0 = now_ns();
        for (long it = 0; it < iters; it++) {
            int r = bpf_map_get_next_key(fd, NULL, &k);
            for (uint32_t i = 1; i < n && r == 0; i++) {
                r = bpf_map_get_next_key(fd, &k, &nk);
                k = nk;
            }
            done += n;
        }
        t1 = now_ns();
    } else if (!strcmp(op, "dump_batch")) {
        /* whole map into one preallocated buffer pair, chunk elements per syscall */
        uint32_t cap = info.max_entries;
        char *kb = malloc((size_t)cap * info.key_size), *vb = malloc((size_t)cap * vs);
        /* touch the pages first, as the driver's bytearrays are (no page faults timed) */
        memset(kb, 0, (size_t)cap * info.key_size);
        memset(vb, 0, (size_t)cap * vs);
        t0 = now_ns();
        for (long it = 0; it < iters; it++) {
            uint32_t total = 0, in = 0, out = 0, has_in = 0;
            for (;;) {
                __u32 cnt = cap - total < chunk ? cap - total : chunk;
                if (!cnt)
                    break;
                int r = bpf_map_lookup_batch(fd, has_in ? &in : NULL, &out,
                                             kb + (size_t)total * info.key_size,
                                             vb + (size_t)total * vs, &cnt, NULL);
                if (r < 0 && r != -ENOENT) {
                    fprintf(stderr, "lookup_batch: %d\n", r);
                    return 1;
                }
                total += cnt;
                if (r == -ENOENT)
                    break;
                in = out;
                has_in = 1;
            }
            done += total;
        }
        t1 = now_ns();
        free(kb);
        free(vb);
    } else if (!strcmp(op, "fill_batch")) {
        char *vb = calloc(n, vs);
        uint32_t *seq = malloc(sizeof(uint32_t) * n);
        for (uint32_t i = 0; i < n; i++)
            seq[i] = i;
        t0 = now_ns();
        for (long it = 0; it < iters; it++) {
            __u32 cnt = n;
            if (bpf_map_update_batch(fd, seq, vb, &cnt, NULL) < 0) {
                perror("update_batch");
                return 1;
            }
            done += cnt;
        }
        t1 = now_ns();
        free(vb);
        free(seq);
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    printf("%s %.2f\n", op, (t1 - t0) / (done ? done : 1));
    return 0;
}
