/* The NFS benchmark's client (bench/nfs_root.py): reads the files a boot reads from the server's
 * export, as a node's kernel would at boot, and prints what it read. The host kernel has no NFS
 * client (FACTS.md), so this is libnfs (Debian's libnfs-dev), built by the benchmark itself.
 *
 *   nfs_reader 'nfs://10.77.0.1/swarmboot/IMAGE/1?version=4' LIST   (LIST: "BYTES PATH" lines)
 *
 * Each file is opened and read up to BYTES (what the boot had in its page cache), in 1 MiB
 * reads; the output is one line: "files=N bytes=B seconds=S".
 */
#include <fcntl.h>
#include <sys/time.h>
#include <nfsc/libnfs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK (1024 * 1024)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NFS-URL LIST\n", argv[0]);
        return 2;
    }
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *url = nfs ? nfs_parse_url_dir(nfs, argv[1]) : NULL;
    if (url == NULL) {
        fprintf(stderr, "bad URL %s: %s\n", argv[1], nfs ? nfs_get_error(nfs) : "no context");
        return 1;
    }
    double start = now();
    if (nfs_mount(nfs, url->server, url->path) != 0) {
        fprintf(stderr, "mount %s:%s failed: %s\n", url->server, url->path, nfs_get_error(nfs));
        return 1;
    }
    FILE *list = fopen(argv[2], "r");
    if (list == NULL) {
        perror(argv[2]);
        return 1;
    }
    char *buf = malloc(CHUNK);
    char line[4096];
    long files = 0;
    uint64_t total = 0;
    while (fgets(line, sizeof line, list)) {
        char path[4096];
        unsigned long long want;
        if (sscanf(line, "%llu %4095[^\n]", &want, path) != 2)
            continue;
        struct nfsfh *fh;
        if (nfs_open(nfs, path, O_RDONLY, &fh) != 0) {
            fprintf(stderr, "open %s: %s\n", path, nfs_get_error(nfs));
            return 1;
        }
        uint64_t done = 0;
        while (done < want) {
            uint64_t n = want - done < CHUNK ? want - done : CHUNK;
            int got = nfs_read(nfs, fh, n, buf);
            if (got < 0) {
                fprintf(stderr, "read %s: %s\n", path, nfs_get_error(nfs));
                return 1;
            }
            if (got == 0)
                break;
            done += (uint64_t)got;
        }
        nfs_close(nfs, fh);
        total += done;
        files++;
    }
    printf("files=%ld bytes=%llu seconds=%.3f\n", files, (unsigned long long)total, now() - start);
    nfs_umount(nfs);
    nfs_destroy_context(nfs);
    return 0;
}
