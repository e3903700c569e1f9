/* codejury-launch: the two small programs around every sandbox, in one binary.
 *
 *   codejury-launch drop UID GID PROCS_FILE... -- BWRAP ARGS...
 *     On the host, as root: writes its own pid into the run's cgroup.procs files (so
 *     bubblewrap and everything it starts are accounted and killable from birth), drops
 *     to UID/GID with no supplementary groups and no capabilities, and execs bubblewrap.
 *     The host starts this instead of asking Python to change uid (which forces a full
 *     fork() of the worker; a plain exec lets it vfork).
 *
 *   codejury-launch CONTROL_FD ERROR_FD
 *     The first program inside every sandbox: waits for one message on CONTROL_FD,
 *     writes the run's files into the work dir, sets the run's rlimits and execs the
 *     program. Sandboxes are therefore started before the program is known (a warm
 *     pool). Failures before exec are reported on ERROR_FD (close-on-exec: a successful
 *     exec closes it empty), so the host can tell its own failure from the program's.
 *
 * Message (little-endian): "CJL1", u32 nfiles {u32 len, path, u32 len, data},
 * u32 argc {u32 len, arg}, u32 envc {u32 len, "K=V"}, u64 cpu_soft, u64 cpu_hard,
 * u64 fsize.
 *
 * Why freestanding (no libc) on x86-64 and arm64: every process that starts glibc asks
 * the CPU for its features and cache sizes (CPUID), and in a virtual machine each CPUID
 * traps to the hypervisor: about 0.5 ms per exec measured on these machines, paid twice
 * per run by this program alone. Elsewhere it builds against libc (CJL_LIBC).
 */
#if defined(CJL_LIBC) || !(defined(__x86_64__) || defined(__aarch64__))
#define CJL_USE_LIBC 1
#endif

#ifdef CJL_USE_LIBC
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
typedef unsigned long usize;
static long sys_ret(long r) { return r < 0 ? -errno : r; }
static long sys_read(int fd, void *buf, usize n) { return sys_ret(read(fd, buf, n)); }
static long sys_write(int fd, const void *buf, usize n) { return sys_ret(write(fd, buf, n)); }
static long sys_openat(int dir, const char *path, int flags, int mode) {
    return sys_ret(openat(dir, path, flags, mode));
}
static long sys_close(int fd) { return sys_ret(close(fd)); }
static long sys_mkdirat(int dir, const char *path, int mode) { return sys_ret(mkdirat(dir, path, mode)); }
static long sys_fcntl(int fd, int cmd, long arg) { return sys_ret(fcntl(fd, cmd, arg)); }
static long sys_prlimit(int resource, const unsigned long *limit) {
    struct rlimit r = {limit[0], limit[1]};
    return sys_ret(setrlimit(resource, &r));
}
static long sys_execve(const char *path, char *const *argv, char *const *envp) {
    return sys_ret(execve(path, argv, envp));
}
static long sys_setgroups0(void) { return sys_ret(setgroups(0, NULL)); }
static long sys_setresgid(unsigned g) { return sys_ret(setresgid(g, g, g)); }
static long sys_setresuid(unsigned u) { return sys_ret(setresuid(u, u, u)); }
static long sys_getresuid(unsigned *r, unsigned *e, unsigned *s) { return sys_ret(getresuid(r, e, s)); }
static long sys_getresgid(unsigned *r, unsigned *e, unsigned *s) { return sys_ret(getresgid(r, e, s)); }
static long sys_getgroups0(void) { return sys_ret(getgroups(0, NULL)); }
static void *sys_mmap(usize n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
static void *sys_mremap(void *old, usize old_n, usize n) {
    void *p = mremap(old, old_n, n, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}
static void sys_exit(int code) { _exit(code); }
#define CJL_AT_FDCWD AT_FDCWD
#define CJL_EINTR EINTR
#define CJL_EEXIST EEXIST
#define CJL_O_WRONLY O_WRONLY
#define CJL_O_CREAT O_CREAT
#define CJL_O_TRUNC O_TRUNC
#define CJL_O_CLOEXEC O_CLOEXEC
#define CJL_F_SETFD F_SETFD
#define CJL_FD_CLOEXEC FD_CLOEXEC
#define CJL_RLIMIT_CPU RLIMIT_CPU
#define CJL_RLIMIT_FSIZE RLIMIT_FSIZE
#define CJL_RLIMIT_CORE RLIMIT_CORE
#else
typedef unsigned long usize;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
#define NULL ((void *)0)
#define CJL_AT_FDCWD (-100)
#define CJL_EINTR 4
#define CJL_EEXIST 17
#define CJL_O_WRONLY 01
#define CJL_O_CREAT 0100
#define CJL_O_TRUNC 01000
#define CJL_O_CLOEXEC 02000000
#define CJL_F_SETFD 2
#define CJL_FD_CLOEXEC 1
#define CJL_RLIMIT_CPU 0
#define CJL_RLIMIT_FSIZE 1
#define CJL_RLIMIT_CORE 4

#if defined(__x86_64__)
enum {
    NR_read = 0, NR_write = 1, NR_close = 3, NR_mmap = 9, NR_mremap = 25, NR_execve = 59,
    NR_exit = 60, NR_fcntl = 72, NR_getresuid = 118, NR_getresgid = 120, NR_getgroups = 115,
    NR_setgroups = 116, NR_setresuid = 117, NR_setresgid = 119, NR_openat = 257,
    NR_mkdirat = 258, NR_prlimit64 = 302,
};
static long sc(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call cjl_start\n  hlt\n");
#else /* __aarch64__ */
enum {
    NR_read = 63, NR_write = 64, NR_close = 57, NR_mmap = 222, NR_mremap = 216, NR_execve = 221,
    NR_exit = 93, NR_fcntl = 25, NR_getresuid = 148, NR_getresgid = 150, NR_getgroups = 158,
    NR_setgroups = 159, NR_setresuid = 147, NR_setresgid = 149, NR_openat = 56,
    NR_mkdirat = 34, NR_prlimit64 = 261,
};
static long sc(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n"
        "  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  and sp, x0, #-16\n  bl cjl_start\n");
#endif

static long sys_read(int fd, void *buf, usize n) { return sc(NR_read, fd, (long)buf, (long)n, 0, 0, 0); }
static long sys_write(int fd, const void *buf, usize n) { return sc(NR_write, fd, (long)buf, (long)n, 0, 0, 0); }
static long sys_openat(int dir, const char *path, int flags, int mode) {
    return sc(NR_openat, dir, (long)path, flags, mode, 0, 0);
}
static long sys_close(int fd) { return sc(NR_close, fd, 0, 0, 0, 0, 0); }
static long sys_mkdirat(int dir, const char *path, int mode) { return sc(NR_mkdirat, dir, (long)path, mode, 0, 0, 0); }
static long sys_fcntl(int fd, int cmd, long arg) { return sc(NR_fcntl, fd, cmd, arg, 0, 0, 0); }
static long sys_prlimit(int resource, const unsigned long *limit) {
    return sc(NR_prlimit64, 0, resource, (long)limit, 0, 0, 0);
}
static long sys_execve(const char *path, char *const *argv, char *const *envp) {
    return sc(NR_execve, (long)path, (long)argv, (long)envp, 0, 0, 0);
}
static long sys_setgroups0(void) { return sc(NR_setgroups, 0, 0, 0, 0, 0, 0); }
static long sys_setresgid(unsigned g) { return sc(NR_setresgid, g, g, g, 0, 0, 0); }
static long sys_setresuid(unsigned u) { return sc(NR_setresuid, u, u, u, 0, 0, 0); }
static long sys_getresuid(unsigned *r, unsigned *e, unsigned *s) {
    return sc(NR_getresuid, (long)r, (long)e, (long)s, 0, 0, 0);
}
static long sys_getresgid(unsigned *r, unsigned *e, unsigned *s) {
    return sc(NR_getresgid, (long)r, (long)e, (long)s, 0, 0, 0);
}
static long sys_getgroups0(void) { return sc(NR_getgroups, 0, 0, 0, 0, 0, 0); }
static void *sys_mmap(usize n) {
    long p = sc(NR_mmap, 0, (long)n, 3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
    return p < 0 && p > -4096 ? NULL : (void *)p;
}
static void *sys_mremap(void *old, usize old_n, usize n) {
    long p = sc(NR_mremap, (long)old, (long)old_n, (long)n, 1 /* MREMAP_MAYMOVE */, 0, 0);
    return p < 0 && p > -4096 ? NULL : (void *)p;
}
static void sys_exit(int code) {
    for (;;) sc(NR_exit, code, 0, 0, 0, 0, 0);
}

/* The compiler may emit calls to these even in freestanding code. */
void *memcpy(void *dst, const void *src, usize n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memset(void *dst, int c, usize n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
int memcmp(const void *a, const void *b, usize n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}
#endif

/* -- tiny helpers ------------------------------------------------------------------ */

static int cjl_streq(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* A non-negative decimal, or -1. */
static long cjl_atoi(const char *s) {
    long v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int err_fd = 2;

/* Report "codejury-launch: WHAT ARG (errno N)" on the error fd and exit 127. */
static void fail(const char *what, const char *arg, long err) {
    char buf[512];
    usize n = 0;
    const char *parts[] = {"codejury-launch: ", what, arg ? " " : "", arg ? arg : ""};
    for (unsigned i = 0; i < sizeof parts / sizeof *parts; i++)
        for (const char *p = parts[i]; *p && n < sizeof buf - 24; p++) buf[n++] = *p;
    if (err < 0) {
        char digits[12];
        int k = 0;
        unsigned long e = (unsigned long)-err;
        do digits[k++] = (char)('0' + e % 10), e /= 10;
        while (e && k < 11);
        const char *pre = " (errno ";
        for (const char *p = pre; *p; p++) buf[n++] = *p;
        while (k) buf[n++] = digits[--k];
        buf[n++] = ')';
    }
    buf[n++] = '\n';
    long ignored = sys_write(err_fd, buf, n);
    (void)ignored;
    sys_exit(127);
}

/* -- drop: on the host, as root, in front of bubblewrap ---------------------------- */

static void write_self_to(const char *procs_file) {
    long fd = sys_openat(CJL_AT_FDCWD, procs_file, CJL_O_WRONLY | CJL_O_CLOEXEC, 0);
    if (fd < 0) fail("open", procs_file, fd);
    /* "0" is the writing process itself, in cgroup v1 and v2 alike. */
    long n = sys_write((int)fd, "0", 1);
    if (n != 1) fail("join cgroup", procs_file, n);
    sys_close((int)fd);
}

static void drop(int argc, char **argv, char **envp) {
    /* argv: launch drop UID GID PROCS_FILE... -- PROGRAM ARGS... */
    if (argc < 6) fail("usage: codejury-launch drop UID GID PROCS_FILE... -- PROGRAM ARGS...", NULL, 0);
    long uid = cjl_atoi(argv[2]), gid = cjl_atoi(argv[3]);
    if (uid <= 0 || gid <= 0) fail("drop: UID and GID must be positive (never root)", NULL, 0);
    int i = 4;
    for (; i < argc && !cjl_streq(argv[i], "--"); i++) write_self_to(argv[i]);
    if (i + 1 >= argc) fail("drop: nothing to run after --", NULL, 0);
    long r;
    if ((r = sys_setgroups0()) < 0) fail("setgroups", NULL, r);
    if ((r = sys_setresgid((unsigned)gid)) < 0) fail("setresgid", NULL, r);
    if ((r = sys_setresuid((unsigned)uid)) < 0) fail("setresuid", NULL, r);
    /* Belt and braces: every id is the sandbox user's and no group is left. */
    unsigned a, b, c;
    if (sys_getresuid(&a, &b, &c) < 0 || a != uid || b != uid || c != uid) fail("drop: uid did not change", NULL, 0);
    if (sys_getresgid(&a, &b, &c) < 0 || a != gid || b != gid || c != gid) fail("drop: gid did not change", NULL, 0);
    if (sys_getgroups0() != 0) fail("drop: supplementary groups remain", NULL, 0);
    r = sys_execve(argv[i + 1], argv + i + 1, envp);
    fail("exec", argv[i + 1], r);
}

/* -- launch: inside the sandbox ------------------------------------------------------ */

static unsigned char *msg;
static usize msg_len, pos;

static void need(usize n) {
    if (msg_len - pos < n) fail("truncated message", NULL, 0);
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

/* The next length-prefixed string, NUL-terminated in place: each string's terminator
 * overwrites the first byte of the next length, which is read before that happens. */
static char *str(usize *len_out) {
    uint32_t len = u32();
    need(len);
    char *s = (char *)msg + pos;
    pos += len;
    if (len_out) *len_out = len;
    return s;
}

/* Terminate the strings collected so far: done after parsing, from a list of ends. */
static usize *ends;
static usize nends, cap_ends;

static char *alloc(usize n) {
    char *p = sys_mmap(n ? n : 1);
    if (!p) fail("out of memory", NULL, 0);
    return p;
}

static char *take_str(usize *len_out) {
    usize len;
    char *s = str(&len);
    if (nends == cap_ends) fail("too many strings", NULL, 0);
    ends[nends++] = (usize)(s - (char *)msg) + len;
    if (len_out) *len_out = len;
    return s;
}

static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            long r = sys_mkdirat(CJL_AT_FDCWD, path, 0755);
            if (r < 0 && r != -CJL_EEXIST) fail("mkdir", path, r);
            *p = '/';
        }
    }
}

static void write_file(const char *path, const char *data, usize len) {
    long fd = sys_openat(CJL_AT_FDCWD, path, CJL_O_WRONLY | CJL_O_CREAT | CJL_O_TRUNC | CJL_O_CLOEXEC, 0644);
    if (fd < 0) fail("open", path, fd);
    while (len) {
        long n = sys_write((int)fd, data, len);
        if (n < 0) {
            if (n == -CJL_EINTR) continue;
            fail("write", path, n);
        }
        data += n;
        len -= (usize)n;
    }
    sys_close((int)fd);
}

static void launch(char **argv) {
    long ctl = cjl_atoi(argv[1]);
    long efd = cjl_atoi(argv[2]);
    if (ctl < 0 || efd < 0) fail("usage: codejury-launch CONTROL_FD ERROR_FD", NULL, 0);
    err_fd = (int)efd;
    sys_fcntl(err_fd, CJL_F_SETFD, CJL_FD_CLOEXEC);

    usize cap = 1 << 16;
    msg = (unsigned char *)alloc(cap + 1);
    for (;;) {
        if (msg_len == cap) {
            msg = sys_mremap(msg, cap + 1, cap * 2 + 1);
            if (!msg) fail("out of memory", NULL, 0);
            cap *= 2;
        }
        long n = sys_read((int)ctl, msg + msg_len, cap - msg_len);
        if (n < 0) {
            if (n == -CJL_EINTR) continue;
            fail("read", NULL, n);
        }
        if (n == 0) break;
        msg_len += (usize)n;
    }
    sys_close((int)ctl);
    need(4);
    if (msg[0] != 'C' || msg[1] != 'J' || msg[2] != 'L' || msg[3] != '1') fail("bad magic", NULL, 0);
    pos = 4;

    /* Every string is at least 4 bytes of message (its length): this bounds them. */
    cap_ends = msg_len / 4 + 1;
    ends = (usize *)alloc(cap_ends * sizeof *ends);

    uint32_t nfiles = u32();
    if (nfiles > msg_len / 8) fail("bad file count", NULL, 0);
    char **paths = (char **)alloc(((usize)nfiles + 1) * sizeof *paths);
    char **datas = (char **)alloc(((usize)nfiles + 1) * sizeof *datas);
    usize *lens = (usize *)alloc(((usize)nfiles + 1) * sizeof *lens);
    for (uint32_t i = 0; i < nfiles; i++) {
        paths[i] = take_str(NULL);
        datas[i] = str(&lens[i]); /* file data is written by length, never terminated */
    }
    uint32_t nargs = u32();
    if (nargs == 0 || nargs > msg_len / 4) fail("empty or bad argv", NULL, 0);
    char **args = (char **)alloc(((usize)nargs + 1) * sizeof *args);
    for (uint32_t i = 0; i < nargs; i++) args[i] = take_str(NULL);
    uint32_t nenv = u32();
    if (nenv > msg_len / 4) fail("bad environment count", NULL, 0);
    char **env = (char **)alloc(((usize)nenv + 1) * sizeof *env);
    for (uint32_t i = 0; i < nenv; i++) env[i] = take_str(NULL);
    unsigned long cpu[2], fsize[2], core[2] = {0, 0};
    cpu[0] = u64();
    cpu[1] = u64();
    fsize[0] = fsize[1] = u64();
    /* Now that every length has been read, terminate the strings in place. File data is
     * written before terminating, since a terminator may land in the next file's data. */
    for (uint32_t i = 0; i < nfiles; i++) {
        usize plen = (usize)(datas[i] - 4 - paths[i]);
        char *path = alloc(plen + 1);
        memcpy(path, paths[i], plen);
        path[plen] = 0;
        make_parents(path);
        write_file(path, datas[i], lens[i]);
    }
    for (usize i = 0; i < nends; i++) msg[ends[i]] = 0;
    long r;
    if ((r = sys_prlimit(CJL_RLIMIT_CPU, cpu)) < 0) fail("setrlimit cpu", NULL, r);
    if ((r = sys_prlimit(CJL_RLIMIT_FSIZE, fsize)) < 0) fail("setrlimit fsize", NULL, r);
    if ((r = sys_prlimit(CJL_RLIMIT_CORE, core)) < 0) fail("setrlimit core", NULL, r);
    r = sys_execve(args[0], args, env);
    fail("exec", args[0], r);
}

static int run(int argc, char **argv, char **envp) {
    if (argc >= 2 && cjl_streq(argv[1], "drop")) drop(argc, argv, envp);
    if (argc != 3) fail("usage: codejury-launch CONTROL_FD ERROR_FD | drop UID GID PROCS... -- PROGRAM", NULL, 0);
    launch(argv);
    return 127;
}

#ifdef CJL_USE_LIBC
int main(int argc, char **argv, char **envp) { return run(argc, argv, envp); }
#else
void cjl_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    sys_exit(run(argc, argv, envp));
}
#endif
