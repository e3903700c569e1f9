"""The seccomp filter every sandboxed program runs under (pure: it builds bytes).

Namespaces keep a candidate away from the host; a seccomp filter keeps it away from the
kernel interfaces it has no business with, in the style of Docker's default profile:
debugging other processes (ptrace, process_vm_*), the key store, BPF, perf events,
mounting and namespaces, modules, kexec, swap, clocks, io_uring. What the 13 toolchains
need stays allowed (the canonical-solution sweep proves it: tests/integration/execution/
test_canonical_solutions.py). A denied call fails with EPERM, as under Docker, so a
runtime that probes for a feature (libuv's io_uring) falls back instead of dying.

The program is classic BPF, as ``bwrap --seccomp FD`` takes it (``struct sock_filter``
records; bubblewrap sets no_new_privs and installs it just before it execs the program,
after its own mounts). It is built for x86-64, where these numbers hold; on any other
architecture the filter kills the process, so ``filter_for_this_machine`` returns None there
and the sandbox runs without one (``SandboxConfig.seccomp`` says so in its log).
Calls of the x32 ABI (numbers with bit 30 set) are refused: their numbers differ.
"""

from __future__ import annotations

import errno
import platform
import struct

# linux/filter.h, linux/bpf_common.h
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
# linux/seccomp.h
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
# offsetof(struct seccomp_data, nr / arch)
_NR = 0
_ARCH = 4
AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000

#: Refused system calls (x86-64 numbers), by what they would reach.
DENIED_X86_64: dict[str, int] = {
    # other processes' memory and state
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "pidfd_getfd": 438,
    # the kernel key store
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    # in-kernel programs and performance counters
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    # file systems, mounts and namespaces (bubblewrap set these up before the filter)
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "unshare": 272,
    "setns": 308,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "quotactl": 179,
    # the machine: modules, kexec, reboot, swap, accounting, clocks, kernel log, ports
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "acct": 163,
    "settimeofday": 164,
    "clock_settime": 227,
    "clock_adjtime": 305,
    "adjtimex": 159,
    "syslog": 103,
    "iopl": 172,
    "ioperm": 173,
    "vhangup": 153,
    "lookup_dcookie": 212,
    "uselib": 134,
    "_sysctl": 156,
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(denied: dict[str, int], *, arch: int = AUDIT_ARCH_X86_64) -> bytes:
    """The BPF program: kill on another architecture, EPERM for x32 calls and for each
    number in ``denied``, allow the rest."""
    numbers = sorted(set(denied.values()))
    # layout: 0 ld arch, 1 jeq arch, 2 ld nr, 3 jge x32, 4.. jeq each, allow, errno, kill
    allow = 4 + len(numbers)
    refuse, kill = allow + 1, allow + 2
    if refuse - 4 > 255:
        raise ValueError("too many denied calls for one jump table")
    program = [
        _insn(_LD_W_ABS, 0, 0, _ARCH),
        _insn(_JEQ_K, 0, kill - 2, arch),
        _insn(_LD_W_ABS, 0, 0, _NR),
        _insn(_JGE_K, refuse - 4, 0, _X32_BIT),
    ]
    for index, number in enumerate(numbers, start=4):
        program.append(_insn(_JEQ_K, refuse - index - 1, 0, number))
    program += [
        _insn(_RET_K, 0, 0, _RET_ALLOW),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    return b"".join(program)


def filter_for_this_machine() -> bytes | None:
    """The filter for this machine's architecture, or None where there is none yet."""
    if platform.machine() in ("x86_64", "AMD64"):
        return build_filter(DENIED_X86_64)
    return None
