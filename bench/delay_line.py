"""A delay line between two TUN devices: each IP packet read from one is written to the other
`DELAY` seconds later, in order. bench/network.py puts one device in a network namespace of its
own, so everything that crosses pays a round trip of twice `DELAY`: TCP's handshake, TLS's, and
every request and answer. (`tc netem` does this inside the kernel; the kernels this project's
machines run lack it, so the packets take this detour through a process instead.)

    python bench/delay_line.py NEAR_TUN NETNS FAR_TUN DELAY

NEAR_TUN is in our namespace, FAR_TUN in NETNS (both made beforehand with `ip tuntap`). Prints
`ready` once both are attached, then runs until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import struct
import sys
import threading

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000  # IP packets, without the extra packet-info header
CLONE_NEWNET = 0x40000000


def attach(name: str) -> int:
    """A non-blocking descriptor reading and writing the packets of TUN device `name`, in the
    calling thread's network namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def attach_inside(netns: str, name: str) -> int:
    """`attach` in another network namespace: from a thread that enters it first (setns moves
    only the calling thread; the device is opened there and its descriptor works anywhere)."""
    found: list[int | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            namespace = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            if libc.setns(namespace, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"cannot enter the network namespace {netns}")
            found.append(attach(name))
        except BaseException as error:  # handed to the main thread
            found.append(error)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


async def relay(near: int, far: int, delay: float) -> None:
    loop = asyncio.get_running_loop()

    def deliver(target: int, packet: bytes) -> None:
        with contextlib.suppress(OSError):  # a full queue drops it, as a link would
            os.write(target, packet)

    def pump(source: int, target: int) -> None:
        def readable() -> None:
            while True:
                try:
                    packet = os.read(source, 65536)
                except BlockingIOError:
                    return
                loop.call_at(loop.time() + delay, deliver, target, packet)

        loop.add_reader(source, readable)

    pump(near, far)
    pump(far, near)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    near_name, netns, far_name, delay = sys.argv[1:5]
    near, far = attach(near_name), attach_inside(netns, far_name)
    asyncio.run(relay(near, far, float(delay)))


if __name__ == "__main__":
    main()
