/* codejury-launch: the first program in every sandbox.
 *
 * It waits for one message on fd argv[1], writes the run's files into the work dir,
 * sets the run's rlimits and execs the program. Sandboxes are therefore started before
 * the program is known (a warm pool), and the host never execs anything per run but
 * this. Failures before exec are reported on fd argv[2] (close-on-exec: a successful
 * exec closes it empty), so the host can tell its own failure from the program's.
 *
 * Message (little-endian): "CJL1", u32 nfiles {u32 len, path, u32 len, data},
 * u32 argc {u32 len, arg}, u32 envc {u32 len, "K=V"}, u64 cpu_soft, u64 cpu_hard,
 * u64 fsize.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int err_fd = -1;

static void fail(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && err_fd >= 0) {
        ssize_t ignored = write(err_fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
        (void)ignored;
    }
    _exit(127);
}

static unsigned char *msg;
static size_t msg_len, pos;

static void need(size_t n) {
    if (msg_len - pos < n) fail("codejury-launch: truncated message");
}

static uint32_t u32(void) {
    need(4);
    uint32_t v = (uint32_t)msg[pos] | (uint32_t)msg[pos + 1] << 8 | (uint32_t)msg[pos + 2] << 16 |
                 (uint32_t)msg[pos + 3] << 24;
    pos += 4;
    return v;
}

static uint64_t u64(void) {
    uint64_t lo = u32();
    uint64_t hi = u32();
    return lo | hi << 32;
}

/* A NUL-terminated copy of the next length-prefixed string. */
static char *str(size_t *len_out) {
    uint32_t len = u32();
    need(len);
    char *s = malloc((size_t)len + 1);
    if (!s) fail("codejury-launch: out of memory");
    memcpy(s, msg + pos, len);
    s[len] = 0;
    pos += len;
    if (len_out) *len_out = len;
    return s;
}

static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) && errno != EEXIST) fail("codejury-launch: mkdir %s: %s", path, strerror(errno));
            *p = '/';
        }
    }
}

static void write_file(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("codejury-launch: open %s: %s", path, strerror(errno));
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("codejury-launch: write %s: %s", path, strerror(errno));
        }
        data += n;
        len -= (size_t)n;
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: codejury-launch CONTROL_FD ERROR_FD\n");
        return 127;
    }
    int ctl = atoi(argv[1]);
    err_fd = atoi(argv[2]);
    fcntl(err_fd, F_SETFD, FD_CLOEXEC);

    size_t cap = 1 << 16;
    msg = malloc(cap);
    if (!msg) fail("codejury-launch: out of memory");
    for (;;) {
        if (msg_len == cap) {
            cap *= 2;
            msg = realloc(msg, cap);
            if (!msg) fail("codejury-launch: out of memory");
        }
        ssize_t n = read(ctl, msg + msg_len, cap - msg_len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("codejury-launch: read: %s", strerror(errno));
        }
        if (n == 0) break;
        msg_len += (size_t)n;
    }
    close(ctl);
    need(4);
    if (memcmp(msg, "CJL1", 4) != 0) fail("codejury-launch: bad magic");
    pos = 4;

    uint32_t nfiles = u32();
    for (uint32_t i = 0; i < nfiles; i++) {
        char *path = str(NULL);
        size_t len;
        char *data = str(&len);
        make_parents(path);
        write_file(path, data, len);
        free(path);
        free(data);
    }
    uint32_t nargs = u32();
    if (nargs == 0) fail("codejury-launch: empty argv");
    char **args = calloc((size_t)nargs + 1, sizeof *args);
    for (uint32_t i = 0; i < nargs; i++) args[i] = str(NULL);
    uint32_t nenv = u32();
    char **env = calloc((size_t)nenv + 1, sizeof *env);
    for (uint32_t i = 0; i < nenv; i++) env[i] = str(NULL);
    struct rlimit cpu = {(rlim_t)u64(), 0};
    cpu.rlim_max = (rlim_t)u64();
    struct rlimit fsize = {(rlim_t)u64(), 0};
    fsize.rlim_max = fsize.rlim_cur;
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CPU, &cpu) || setrlimit(RLIMIT_FSIZE, &fsize) || setrlimit(RLIMIT_CORE, &core))
        fail("codejury-launch: setrlimit: %s", strerror(errno));
    execve(args[0], args, env);
    fail("codejury-launch: exec %s: %s", args[0], strerror(errno));
    return 127;
}
