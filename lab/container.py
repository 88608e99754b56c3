"""A host pod's container, built inside its node by the API stand-in (lab/apiserver/hostpods.py).

Runs as root inside the node's network, PID, UTS and IPC namespaces (hostNetwork/hostPID/hostIPC)
and in a fresh private mount namespace copied from the node's, then:

1. refuses to go on if /proc/1 is in the PID namespace it was told is this machine's: "PID 1" in a
   container must be the node's init (lab/nodeinit.py), never this machine's;
2. builds the container's root on a tmpfs: this machine's /usr, /etc (the node's) and lib dirs
   read-only as the "image", /dev, a /proc of the node's PID namespace, /sys read-only, a /tmp;
3. mounts each hostPath volume at its mountPath (recursively read-only when `readOnly`), so a
   host pod's `/host` is the node's `/` (with the node's /etc and /proc);
4. prints `ready`, chroots into the root and execs the pod's command, with the capability bounding
   set of the container's securityContext unless it is privileged (`setpriv`), as a runtime would.

    python -m lab.container --root DIR --machine-pid-ns INODE [--caps a,b | --privileged]
        [--host-path SRC:DEST[:ro] ...] -- COMMAND...
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
from pathlib import Path

IMAGE_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
"""This machine's top-level entries that make up the lab's container "image" (symlinks kept as such)."""
MOUNT_TIMEOUT_S = 10.0
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added after the syscall table merge)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
REFUSED_EXIT = 126


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def refuse(message: str) -> None:
    print(f"lab container: {message}", file=sys.stderr, flush=True)
    sys.exit(REFUSED_EXIT)


def mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, timeout=MOUNT_TIMEOUT_S)


def read_only_recursive(path: Path) -> None:
    """Make `path` and every mount below it read-only (one mount_setattr call)."""
    attr = MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, str(path).encode(), AT_RECURSIVE,
                    ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount_setattr read-only {path}: {os.strerror(errno)}")


def pid_ns_inode(proc: Path) -> int:
    return os.stat(proc / "1" / "ns" / "pid").st_ino


def build_root(root: Path, host_paths: list[tuple[str, str, bool]]) -> None:
    mount("-t", "tmpfs", "-o", "mode=0755", "container-root", str(root))
    for name in IMAGE_DIRS:
        source = Path("/") / name
        if source.is_symlink():
            (root / name).symlink_to(os.readlink(source))
        elif source.is_dir():
            (root / name).mkdir()
            mount("--bind", "-o", "ro", str(source), str(root / name))
    for name in ("dev", "proc", "sys", "tmp"):
        (root / name).mkdir()
    mount("--rbind", "/dev", str(root / "dev"))
    mount("-t", "proc", "proc", str(root / "proc"))
    mount("--rbind", "/sys", str(root / "sys"))
    read_only_recursive(root / "sys")
    mount("-t", "tmpfs", "tmpfs", str(root / "tmp"))
    for source, dest, read_only in host_paths:
        target = root / dest.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        mount("--rbind", source, str(target))
        if read_only:
            read_only_recursive(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--machine-pid-ns", required=True, type=int)
    parser.add_argument("--privileged", action="store_true")
    parser.add_argument("--caps", default="", help="capabilities kept (lowercase, no cap_ prefix)")
    parser.add_argument("--host-path", action="append", default=[], help="SRC:DEST[:ro]")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    forbidden = args.machine_pid_ns
    if pid_ns_inode(Path("/proc")) == forbidden:
        refuse("/proc/1 is this machine's PID 1, not a node's init: refusing to build a host container")
    host_paths = []
    for spec in args.host_path:
        source, dest, *mode = spec.split(":")
        host_paths.append((source, dest, mode == ["ro"]))
    build_root(args.root, host_paths)
    seen = [args.root / "proc", *(args.root / d.lstrip("/") / "proc" for _, d, _ in host_paths)]
    for proc in seen:
        if (proc / "1").exists() and pid_ns_inode(proc) == forbidden:
            refuse(f"{proc}/1 is this machine's PID 1: refusing to start the container")
    print("ready", flush=True)
    os.chroot(args.root)
    os.chdir("/")
    command = args.command
    if not args.privileged:
        keep = "".join(f",+{cap}" for cap in args.caps.split(",") if cap)
        command = ["setpriv", "--no-new-privs", f"--bounding-set=-all{keep}", "--", *command]
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
